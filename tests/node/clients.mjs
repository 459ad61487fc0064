// Clients we did not write, against a running devstack: Amplify's SRP sign-in (amazon-cognito-identity-js)
// and aws4fetch's SigV4 signer. Reads DEVSTACK_JSON (DevStack.describe()) and SIGNINS; prints one JSON line.
import { availableParallelism } from "node:os";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { AuthenticationDetails, AuthenticationHelper, CognitoUser, CognitoUserPool } from "amazon-cognito-identity-js";
import { AwsClient } from "aws4fetch";

const stack = JSON.parse(process.env.DEVSTACK_JSON);
const signIns = Number(process.env.SIGNINS || "500");
// The library's big-integer SRP math is CPU-bound JavaScript: spread it over worker threads.
const workers = Number(process.env.WORKERS || String(Math.max(1, Math.min(4, availableParallelism()))));
const concurrency = 2; // sign-ins in flight per thread, so the server's half overlaps with ours

// Each sign-in costs the library two 3072-bit modPow's in pure-JS big integers (~100 ms each). A
// thread keeps its first ephemeral a and A for later sign-ins, halving that: what the test is about is
// the server's side, and the salt, B and secret block it sends stay fresh on every sign-in.
if (process.env.REUSE_EPHEMERAL !== "0") {
  const generate = AuthenticationHelper.prototype.generateRandomSmallA;
  const calculateA = AuthenticationHelper.prototype.calculateA;
  let smallA = null;
  let largeA = null;
  AuthenticationHelper.prototype.generateRandomSmallA = function reusedSmallA() {
    smallA = smallA || generate.call(this);
    return smallA;
  };
  AuthenticationHelper.prototype.calculateA = function reusedLargeA(a, callback) {
    if (largeA && a === smallA) return callback(null, largeA);
    return calculateA.call(this, a, (err, value) => {
      if (!err && a === smallA) largeA = value;
      callback(err, value);
    });
  };
}

const pool = new CognitoUserPool({
  UserPoolId: stack.user_pool_id,
  ClientId: stack.public_client_id, // the JS library has no client-secret support
  endpoint: stack.moto_endpoint_url,
});

// Watch the SALT the server sends, without changing what the library does with it.
const salts = [];
const request = pool.client.request.bind(pool.client);
pool.client.request = (operation, params, callback) =>
  request(operation, params, (err, data) => {
    if (!err && data && data.ChallengeName === "PASSWORD_VERIFIER") salts.push(data.ChallengeParameters.SALT);
    callback(err, data);
  });

function signIn() {
  const user = new CognitoUser({ Username: stack.username, Pool: pool });
  user.setAuthenticationFlowType("USER_SRP_AUTH");
  const details = new AuthenticationDetails({ Username: stack.username, Password: stack.password });
  return new Promise((resolve) => {
    user.authenticateUser(details, {
      onSuccess: (session) => resolve({ ok: true, idToken: session.getIdToken().getJwtToken() }),
      onFailure: (err) => resolve({ ok: false, error: `${err.code}: ${err.message}` }),
      mfaRequired: () => resolve({ ok: false, error: "unexpected MFA" }),
      totpRequired: () => resolve({ ok: false, error: "unexpected TOTP" }),
      newPasswordRequired: () => resolve({ ok: false, error: "unexpected NEW_PASSWORD_REQUIRED" }),
    });
  });
}

async function cognitoIdentity(target, body) {
  const response = await fetch(stack.moto_endpoint_url, {
    method: "POST",
    headers: {
      "Content-Type": "application/x-amz-json-1.1",
      "X-Amz-Target": `AWSCognitoIdentityService.${target}`,
    },
    body: JSON.stringify(body),
  });
  const payload = await response.json();
  if (!response.ok) throw new Error(`${target}: ${payload.__type}`);
  return payload;
}

async function signInMany(count) {
  const refused = [];
  let idToken = null;
  let next = 0;
  async function loop() {
    while (next < count) {
      next += 1;
      const result = await signIn();
      if (result.ok) idToken = result.idToken;
      else refused.push(result.error);
    }
  }
  await Promise.all(Array.from({ length: concurrency }, loop));
  return { refused, idToken, salts };
}

if (!isMainThread) {
  parentPort.postMessage(await signInMany(workerData.count));
  process.exit(0);
}

const started = Date.now();
const shares = Array.from({ length: workers }, (_, i) => Math.floor(signIns / workers) + (i < signIns % workers ? 1 : 0));
const results = await Promise.all(
  shares.map(
    (count) =>
      new Promise((resolve, reject) => {
        const worker = new Worker(new URL(import.meta.url), { workerData: { count }, env: process.env });
        worker.once("message", resolve);
        worker.once("error", reject);
      }),
  ),
);
const srpSeconds = (Date.now() - started) / 1000;
const refused = results.flatMap((r) => r.refused);
const idToken = results.map((r) => r.idToken).find(Boolean);
salts.push(...results.flatMap((r) => r.salts));

// Identity-pool credentials for the last ID token, then requests signed by aws4fetch.
const signed = [];
let identityId = null;
let unsignedStatus = null;
if (idToken) {
  const logins = { [stack.provider_name]: idToken };
  const { IdentityId } = await cognitoIdentity("GetId", { IdentityPoolId: stack.identity_pool_id, Logins: logins });
  const { Credentials } = await cognitoIdentity("GetCredentialsForIdentity", { IdentityId, Logins: logins });
  identityId = IdentityId;
  const aws = new AwsClient({
    accessKeyId: Credentials.AccessKeyId,
    secretAccessKey: Credentials.SecretKey,
    sessionToken: Credentials.SessionToken,
    service: "execute-api",
    region: stack.region,
  });
  const calls = [
    ["GET", "/whoami", undefined],
    ["GET", "/orders?date=2026-11-20&limit=5", undefined],
    ["GET", "/echo/a%20b/c?x=1&y=%2F&y=a", undefined],
    ["POST", "/echo/upload", JSON.stringify({ hello: "wörld", n: [1, 2, 3] })],
    ["PUT", "/echo/empty", ""],
  ];
  for (const [method, path, body] of calls) {
    const response = await aws.fetch(`${stack.api_url}${path}`, {
      method,
      body,
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
    });
    const text = await response.text();
    signed.push({ method, path, status: response.status, body: text.slice(0, 300) });
  }
  unsignedStatus = (await fetch(`${stack.api_url}/whoami`)).status;
}

console.log(
  JSON.stringify({
    signIns,
    workers,
    refused: refused.length,
    refusals: refused.slice(0, 5),
    srpSeconds,
    distinctSalts: new Set(salts).size,
    oddLengthSalts: salts.filter((s) => s.length % 2 === 1).length,
    leadingZeroSalts: salts.filter((s) => s.startsWith("0")).length,
    identityId,
    signed,
    unsignedStatus,
  }),
);
