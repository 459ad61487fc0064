"""`make airflow` in a real browser: what a new user clicks through in the Airflow 3.3 UI works.

Debian's headless Chromium, driven by Selenium through Debian's chromedriver (nothing is
downloaded), against the stack `make airflow` starts: log in; the cognito_iam edit form with its
typed fields, labels, placeholders and masked secrets; the list's Test button (success, then a wrong
password); a run triggered from the dialog with default params; a 3-date backfill from the dialog;
the task log. The tests run in file order on one browser and one stack, and every step saves a
screenshot in the folder printed at the end of the pytest run.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from airflow_cognito_iam.get_provider_info import ADVANCED, CONN_FIELDS, UI_FIELD_BEHAVIOUR

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1700",
)
DAG_ID = "cognito_iam_orders_daily"
CONN_ID = "cognito_iam_default"
UI_TIMEOUT = 60.0
RUN_TIMEOUT = 300.0
WRONG_PASSWORD = "Wrong-Passw0rd!"
EXAMPLES_PLACEHOLDER = "Start typing to see options"  # what the 3.3.2 form shows for schema.examples
# Toasts that finished fading in (their text, title first).
TOASTS_JS = (
    "return Array.from(document.querySelectorAll(\"[data-scope='toast'][data-part='root']\"))"
    ".filter(e => getComputedStyle(e).opacity === '1').map(e => e.innerText)"
)
CREDENTIAL_LINE = re.compile(
    r"Cognito credentials for devstack-user: (memory cache hit|shared cache hit|redis cache hit|"
    r"refreshed with the refresh token|exchanged the cached ID token|full sign-in) "
    r"\(identity [a-z0-9-]+:[0-9a-f-]+, expires \d{4}-\d\d-\d\dT"
)

T = TypeVar("T")

try:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement
except ImportError:  # pragma: no cover - selenium is a dev dependency
    pytest.skip("selenium is not installed (pip install -e '.[dev]')", allow_module_level=True)


class Browser:
    """One Chromium session; ``shot`` numbers the screenshots in the order of the steps."""

    def __init__(self, driver: WebDriver, base_url: str, shots: Path) -> None:
        self.driver = driver
        self.base_url = base_url
        self.shots = shots
        self._count = 0

    def get(self, path: str) -> None:
        self.driver.get(f"{self.base_url}{path}")

    def shot(self, name: str, element: WebElement | None = None, height: int | None = None) -> Path:
        """Screenshot of the page, grown to the height of ``element`` (a dialog) so all of it shows."""
        self._count += 1
        path = self.shots / f"{self._count:02d}-{name}.png"
        if element is not None:
            height = self.driver.execute_script(
                "return Math.max(document.documentElement.scrollHeight, arguments[0].scrollHeight + 200)", element
            )
            height = max(1700, int(height or 0))
        if height:
            self.driver.set_window_size(1400, height)
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(1400, 1700)
        return path

    def wait(self, condition: Callable[[], T | None], what: str, timeout: float = UI_TIMEOUT) -> T:
        """Poll ``condition`` until it returns something truthy; a vanished element counts as not yet."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = condition()
                if value:
                    return value
            except (StaleElementReferenceException, IndexError):
                pass
            if time.monotonic() > deadline:
                self.shot("timeout")
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.25)

    def find(self, css: str, within: Any = None) -> WebElement:
        root = within or self.driver
        return self.wait(
            lambda: next((e for e in root.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()), None), css
        )

    def xpath(self, expression: str, within: Any = None) -> WebElement:
        root = within or self.driver
        return self.wait(
            lambda: next((e for e in root.find_elements(By.XPATH, expression) if e.is_displayed()), None), expression
        )

    def dialog(self, title: str) -> WebElement:
        return self.wait(
            lambda: next(
                (d for d in self.driver.find_elements(By.CSS_SELECTOR, "[role='dialog']") if title in d.text), None
            ),
            f"the {title!r} dialog",
        )

    def toasts(self) -> list[str]:
        texts: list[str] = self.driver.execute_script(TOASTS_JS)
        return texts

    def test_toasts(self) -> list[str]:
        return [t for t in self.toasts() if t.startswith("Test Connection")]

    def open_section(self, dialog: WebElement, title: str) -> None:
        trigger = self.xpath(f".//button[@data-part='item-trigger'][normalize-space()={_literal(title)}]", dialog)
        if trigger.get_attribute("aria-expanded") != "true":
            trigger.click()
        self.wait(lambda: trigger.get_attribute("aria-expanded") == "true", f"section {title!r} to open")

    def connection_row(self, conn_id: str) -> WebElement:
        return self.xpath(f"//tr[.//td[normalize-space()={_literal(conn_id)}]]")

    def press_test(self, conn_id: str) -> str:
        """Press Test in the connection list; the text of the toast it raises."""
        before = len(self.test_toasts())
        self.connection_row(conn_id).find_element(By.CSS_SELECTOR, "button[aria-label='Test Connection']").click()
        return self.wait(lambda: (t := self.test_toasts()) and len(t) > before and t[-1], "the Test toast")

    def show_runs(self, runs: dict[str, str]) -> None:
        """The DAG's Runs tab, once it lists these runs."""
        self.get(f"/dags/{DAG_ID}/runs")
        body = self.find("body")
        self.wait(lambda: all(run_id in body.text for run_id in runs), f"the Runs tab to list {sorted(runs)}")

    def open_edit_form(self, conn_id: str) -> WebElement:
        self.get("/connections")
        self.connection_row(conn_id).find_element(By.CSS_SELECTOR, "button[aria-label='Edit Connection']").click()
        dialog = self.dialog("Edit Connection")
        self.wait(lambda: dialog.find_elements(By.NAME, "host"), "the standard fields")
        return dialog


def _literal(text: str) -> str:
    return f'"{text}"' if '"' not in text else f"'{text}'"


@pytest.fixture(scope="module")
def browser(make_airflow: Any, artifact_dir: Path) -> Iterator[Browser]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        message = f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}); .ci/run installs them"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield Browser(driver, make_airflow.url, artifact_dir)
    finally:
        with contextlib.suppress(WebDriverException):
            (artifact_dir / "last-page.html").write_text(driver.page_source)
        driver.quit()  # ends chromedriver and its Chromium
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def secrets(make_airflow: Any) -> list[str]:
    """The stored connection's secrets in clear, which no page, toast or log may show."""
    stored = make_airflow.stored_connection(CONN_ID)
    return [stored["password"], stored["extra_dejson"]["client_secret"], WRONG_PASSWORD]


def test_log_in(browser: Browser, make_airflow: Any) -> None:
    browser.get("/")
    username = browser.find("input[name='username']")
    assert "/auth/login" in browser.driver.current_url
    username.send_keys(make_airflow.username)
    browser.find("input[name='password']").send_keys(make_airflow.password)
    browser.shot("login")
    browser.find("input[name='password']").send_keys(Keys.ENTER)
    browser.wait(lambda: "/auth/login" not in browser.driver.current_url, "the login to finish")
    browser.xpath("//*[normalize-space()='Dags']")
    browser.shot("home")


def test_edit_form_shows_every_typed_field_with_labels_placeholders_and_masked_secrets(
    browser: Browser,
) -> None:
    dialog = browser.open_edit_form(CONN_ID)
    text = dialog.text
    for label in UI_FIELD_BEHAVIOUR["relabeling"].values():
        assert label in text
    for name, placeholder in UI_FIELD_BEHAVIOUR["placeholders"].items():
        assert dialog.find_element(By.NAME, name).get_attribute("placeholder") == placeholder
    password = dialog.find_element(By.NAME, "password")
    assert (password.get_attribute("type"), password.get_attribute("value")) == ("password", "***")
    assert dialog.find_element(By.NAME, "port").get_attribute("value") == "0"

    seen: set[str] = set()
    for section in ("Extra Fields", ADVANCED):
        browser.open_section(dialog, section)
        fields = {n: f for n, f in CONN_FIELDS.items() if f["schema"].get("section", "Extra Fields") == section}
        browser.wait(lambda fields=fields: all(f["label"] in dialog.text for f in fields.values()), section)
        shown = dialog.text
        for name, field in fields.items():
            element = _field_value(dialog, name)
            assert field["label"] in shown, name
            assert field["description"] in shown, name
            schema = field["schema"]
            if schema.get("format") == "password":
                assert element.get_attribute("type") == "password", name
            if schema.get("examples"):
                assert element.get_attribute("placeholder") == EXAMPLES_PLACEHOLDER, name
                options = dialog.find_elements(By.CSS_SELECTOR, f"datalist#list_{name} option")
                assert [o.get_attribute("value") for o in options] == schema["examples"], name
            seen.add(name)
        browser.shot("form-" + ("sign-in" if section == "Extra Fields" else "advanced"), dialog)
        if section == "Extra Fields":
            assert _field_value(dialog, "client_secret").get_attribute("value") == "***"
            assert _field_value(dialog, "auth_flow").get_attribute("value") == "USER_SRP_AUTH"
            options = _select_options(browser, dialog, "auth_flow")
            assert options == CONN_FIELDS["auth_flow"]["schema"]["enum"], "no literal 'null' option"
    assert seen == set(CONN_FIELDS)
    browser.driver.find_element(By.CSS_SELECTOR, "[role='dialog'] [data-part='close-trigger']").click()


def _field_value(dialog: WebElement, name: str) -> WebElement:
    """The form control that holds the field's value (a select keeps it in a hidden input)."""
    return dialog.find_element(By.CSS_SELECTOR, f"[name='element_{name}']")


def _shown(browser: Browser, css: str) -> bool:
    return any(e.is_displayed() for e in browser.driver.find_elements(By.CSS_SELECTOR, css))


def _select_options(browser: Browser, dialog: WebElement, name: str) -> list[str]:
    """Open a typed select field's menu and read its options."""
    select = dialog.find_element(By.CSS_SELECTOR, f"[id='element_{name}']")
    select.find_element(By.CSS_SELECTOR, "input[role='combobox']").click()
    option = "[id^='react-select'][id*='-option-']"
    browser.find(option)
    options = [o.text for o in browser.driver.find_elements(By.CSS_SELECTOR, option)]
    dialog.find_element(By.XPATH, ".//*[normalize-space()='Edit Connection']").click()  # closes the menu only
    browser.wait(lambda: not browser.driver.find_elements(By.CSS_SELECTOR, option), "the menu to close")
    return options


def test_test_button_signs_in_and_names_the_identity(browser: Browser, make_airflow: Any) -> None:
    before = make_airflow.devstack_stats()["cognito"].get("InitiateAuth", 0)
    browser.get("/connections")
    toast = browser.press_test(CONN_ID)
    browser.shot("test-success", height=640)
    assert toast.startswith("Test Connection Successful"), toast
    assert re.search(r"Signed in as devstack-user; identity [a-z0-9-]+:[0-9a-f-]{36}", toast), toast
    assert make_airflow.devstack_stats()["cognito"].get("InitiateAuth", 0) > before, "a real sign-in"


def test_a_wrong_password_fails_the_test_with_a_clear_message_and_no_secret(
    browser: Browser, make_airflow: Any, secrets: list[str]
) -> None:
    dialog = browser.open_edit_form(CONN_ID)
    password = dialog.find_element(By.NAME, "password")
    password.send_keys(Keys.CONTROL, "a")
    password.send_keys(WRONG_PASSWORD)
    browser.xpath(".//button[normalize-space()='Save']", dialog).click()
    browser.wait(lambda: not browser.driver.find_elements(By.CSS_SELECTOR, "[role='dialog']"), "the form to close")
    try:
        toast = browser.press_test(CONN_ID)
        browser.shot("test-wrong-password", height=640)
        assert toast.startswith("Test Connection Failed"), toast
        assert "incorrect username or password" in toast, toast
        assert "SECRET_HASH" not in toast
        assert not any(secret in toast for secret in secrets)
        assert not re.search(r"connection '[A-Za-z]{8}'", toast), "names the API server's random id"
    finally:
        stored = make_airflow.stored_connection(CONN_ID)
        assert stored["extra_dejson"]["client_secret"] == secrets[1], "saving the form kept the masked secret"
        restored = make_airflow.api(
            "PATCH",
            f"/connections/{CONN_ID}",
            params={"update_mask": "password"},
            json={"connection_id": CONN_ID, "conn_type": "cognito_iam", "password": secrets[0]},
        )
        assert restored.status_code == 200, restored.text
    browser.get("/connections")
    assert browser.press_test(CONN_ID).startswith("Test Connection Successful")


def test_trigger_from_the_dialog_with_default_params_succeeds(browser: Browser, make_airflow: Any) -> None:
    browser.get(f"/dags/{DAG_ID}")
    browser.find("[data-testid='trigger-dag-button']").click()
    dialog = browser.dialog("Trigger Dag")
    bucket = browser.find("[name='element_bucket']", dialog)
    assert bucket.get_attribute("value") == ""
    assert "This field is required" not in dialog.text
    trigger = browser.xpath(".//button[normalize-space()='Trigger']", dialog)
    browser.wait(trigger.is_enabled, "the Trigger button to be enabled")
    browser.shot("trigger-dialog", dialog)
    trigger.click()
    runs = make_airflow.wait_for_runs(DAG_ID, "manual", 1, RUN_TIMEOUT)
    assert list(runs.values()) == ["success"], runs
    browser.show_runs(runs)
    browser.shot("trigger-success")


def test_backfill_of_three_dates_from_the_dialog_succeeds(browser: Browser, make_airflow: Any) -> None:
    browser.get(f"/dags/{DAG_ID}")
    browser.find("[data-testid='trigger-dag-button']").click()
    dialog = browser.dialog("Trigger Dag")
    browser.xpath(".//*[normalize-space()='Backfill']", dialog).click()
    dialog = browser.dialog("Run Backfill")
    for index, day in enumerate(("2026/03/01", "2026/03/03")):
        dialog.find_elements(By.CSS_SELECTOR, "[data-testid='datetime-input']")[index].click()
        popover = browser.find("[data-scope='popover'][data-part='content']")
        popover.find_element(By.CSS_SELECTOR, "input[placeholder='YYYY/MM/DD']").send_keys(day)
        time_input = popover.find_element(By.CSS_SELECTOR, "input[placeholder='HH:mm']")
        time_input.send_keys("00:00")
        time_input.send_keys(Keys.ESCAPE)
        browser.wait(lambda: not _shown(browser, "[data-scope='popover'][data-part='content']"), "the picker to close")
    max_active = dialog.find_element(By.NAME, "max_active_runs")
    max_active.send_keys(Keys.CONTROL, "a")
    max_active.send_keys("3")
    browser.wait(lambda: "3 runs will be triggered" in dialog.text, "the dialog to count 3 runs")
    assert "This field is required" not in dialog.text
    run = browser.xpath(".//button[normalize-space()='Run Backfill']", dialog)
    browser.wait(run.is_enabled, "the Run Backfill button to be enabled")
    browser.shot("backfill-dialog", dialog)
    for _ in range(5):
        run.click()
        # SQLite (make airflow): while the scheduler writes, the dialog may say "Database is locked";
        # a user presses the button again.
        outcome = browser.wait(
            lambda: "closed" if not _shown(browser, "[role='dialog']") else "locked" * ("is locked" in dialog.text),
            "the backfill to be created",
        )
        if outcome == "closed":
            break
        time.sleep(3)
    runs = make_airflow.wait_for_runs(DAG_ID, "backfill", 3, RUN_TIMEOUT)
    assert sorted(runs.values()) == ["success"] * 3, runs
    browser.show_runs(runs)
    browser.shot("backfill-success")


def test_task_log_shows_where_credentials_came_from_and_no_secret(
    browser: Browser, make_airflow: Any, secrets: list[str]
) -> None:
    (run_id,) = make_airflow.wait_for_runs(DAG_ID, "manual", 1, RUN_TIMEOUT)
    browser.get(f"/dags/{DAG_ID}/runs/{urllib.parse.quote(run_id, safe='')}/tasks/pull_orders")
    log = browser.wait(
        lambda: (t := browser.driver.find_element(By.TAG_NAME, "body").text) and "GET /orders?" in t and t,
        "the task log",
    )
    browser.shot("task-log")
    assert re.search(r"GET /orders\?[\w&]+: \d+ page\(s\), \d+ record\(s\), \d+ bytes written to s3://", log), log
    assert CREDENTIAL_LINE.search(log), log
    assert not any(secret in log for secret in secrets)
    assert "eyJ" not in log, "no JWT (ID, access or refresh token)"


def test_providers_page_shows_the_description_and_links_our_docs(browser: Browser) -> None:
    browser.get("/providers")
    row = browser.xpath("//tr[.//a[normalize-space()='airflow-cognito-iam']]")
    browser.shot("providers")
    assert "Call APIs behind API Gateway IAM authorization as an Amazon Cognito user pool user" in row.text
    link = row.find_element(By.TAG_NAME, "a").get_attribute("href") or ""
    assert link.startswith("https://")
    assert "airflow.apache.org" not in link
