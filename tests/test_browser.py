"""The published survey in a real browser: headless Chromium against ``fwsurvey serve``.

Checks that the front page shows the verdict table (filled by datasette.yml's script from the
canned query ``verdict_summary``), that the claims page shows every claim with its verdict,
that a claim's evidence rows are one link away, and that a datasette-vega chart really
renders (a canvas with bars in it).
Screenshots land in ``test-artifacts/browser/`` (``FWSURVEY_TEST_ARTIFACTS`` moves it).

Needs Debian's ``chromium`` and ``chromium-driver``: without them the test fails, so that CI
cannot pass without it; ``FWSURVEY_SKIP_BROWSER=1`` skips it on purpose.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from fwsurvey.store import Store
from tests.conftest import BASE_CONFIG, INDEX
from tests.serving import collected_db, free_port, serving

REPO = Path(__file__).parent.parent
ARTIFACTS = Path(os.environ.get("FWSURVEY_TEST_ARTIFACTS", REPO / "test-artifacts")) / "browser"
VERDICTS = {"supported", "contradicted", "mixed", "inconclusive", "insufficient evidence",
            "unmeasurable"}
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--disable-dev-shm-usage",
    "--no-default-browser-check", "--window-size=1400,1000",
    # Only the server under test: every other host fails to resolve.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if os.environ.get("FWSURVEY_SKIP_BROWSER") == "1":
        pytest.skip("FWSURVEY_SKIP_BROWSER=1")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.fail("the browser test needs Chromium and its driver: "
                    "apt-get install chromium chromium-driver (`make test` does, through "
                    "scripts/test-deps.sh); "
                    "FWSURVEY_SKIP_BROWSER=1 skips it on purpose", pytrace=False)
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager (which would download one) never runs.
    service = Service(executable_path=driver_path,
                      log_output=str(ARTIFACTS / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """``fwsurvey serve`` on a database with collected releases and evaluated claims."""
    tmp = tmp_path_factory.mktemp("site")
    config = tmp / "fwsurvey.toml"
    config.write_text(BASE_CONFIG.format(extra_packages="", index=INDEX,
                                         datasette=REPO / "datasette.yml"))
    db = collected_db(config, tmp / "fwsurvey.db", stages=("collect", "claims"))
    store = Store(db)
    store.close()
    fwsurvey = Path(sys.executable).with_name("fwsurvey")
    port = free_port()
    with serving([str(fwsurvey), "serve", "--config", str(config), "--db", str(db),
                  "--port", str(port)], port, tmp / "serve.log") as base:
        yield base, db


def _save(driver, name: str, full_page: bool = False) -> Path:
    """A screenshot (of the whole page when ``full_page``) and the page's DOM, as artifacts."""
    path = ARTIFACTS / f"{name}.png"
    (ARTIFACTS / f"{name}.html").write_text(driver.page_source, encoding="utf-8")
    if full_page:
        width, height = driver.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
        driver.set_window_size(max(1400, min(width, 2400)), min(height + 120, 5000))
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)
    return path


def _table(driver) -> list[dict[str, str]]:
    """The rows of the page's results table, as dicts by column header."""
    return driver.execute_script("""
        const table = document.querySelector('table.rows-and-columns');
        const heads = [...table.querySelectorAll('thead th')].map(th => th.innerText.trim());
        return [...table.querySelectorAll('tbody tr')].map(tr => Object.fromEntries(
            [...tr.querySelectorAll('td')].map((td, i) => [heads[i], td.innerText.trim()])));
    """)


def _severe_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser")
            if e["level"] == "SEVERE" and "favicon" not in e["message"]]


def test_claims_page_shows_every_claim_and_its_verdict(browser, site):
    base, db = site
    store = Store(db)
    expected = {r["claim_id"]: r["verdict"] for r in store.query(
        "SELECT claim_id, verdict FROM claims_latest")}
    with_evidence = store.query("SELECT claim_id, count(*) AS n FROM claim_evidence"
                                " GROUP BY claim_id ORDER BY n DESC LIMIT 1")
    store.close()
    assert expected and with_evidence, "the claims stage wrote no claims or no evidence"

    browser.get(f"{base}/fwsurvey/verdicts")
    WebDriverWait(browser, 20).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "table.rows-and-columns tbody tr")))
    _save(browser, "claims", full_page=True)
    assert browser.find_element(By.TAG_NAME, "h1").text == "The article's claims and their verdicts"
    rows = _table(browser)
    assert {r["claim_id"]: r["verdict"] for r in rows} == expected
    assert {r["verdict"] for r in rows} <= VERDICTS
    assert all(r["text"] and r["reason"] for r in rows)

    # Each verdict is traceable: the claim's evidence rows, side by side.
    claim_id, n = with_evidence[0]["claim_id"], with_evidence[0]["n"]
    browser.get(f"{base}/fwsurvey/claim_evidence?claim_id={claim_id}")
    WebDriverWait(browser, 20).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "table.rows-and-columns tbody tr")))
    _save(browser, "claim_evidence", full_page=True)
    evidence = _table(browser)
    assert len(evidence) == n
    assert {r["claim_id"] for r in evidence} == {claim_id}
    assert all(r["counts"] in {"for", "against", "even", "unusable", "shown"} for r in evidence)
    assert _severe_errors(browser) == []


def test_front_page_shows_the_verdict_table(browser, site):
    base, db = site
    store = Store(db)
    expected = {r["claim_id"]: r for r in store.query(
        "SELECT claim_id, text, verdict, confidence, fragile FROM claims_summary")}
    store.close()
    assert expected, "the claims stage wrote no claims"

    browser.get(f"{base}/")
    WebDriverWait(browser, 20).until(EC.presence_of_element_located(
        (By.CSS_SELECTOR, "#fwsurvey-verdicts table.fwsurvey-verdicts tbody tr")))
    _save(browser, "front_page", full_page=True)
    assert browser.find_element(By.ID, "verdicts-heading").text == (
        "The article's claims and their verdicts")
    shown = browser.execute_script("""
        return [...document.querySelectorAll('table.fwsurvey-verdicts tbody tr')].map(tr => ({
            claim_id: tr.dataset.claimId,
            text: tr.querySelector('.col-text').innerText.trim(),
            verdict: tr.querySelector('.col-verdict').innerText.trim(),
            confidence: tr.querySelector('.col-confidence').innerText.trim(),
            fragile: tr.querySelector('.col-fragile').innerText.trim(),
            href: tr.querySelector('.col-text a').getAttribute('href')}));
    """)
    assert {r["claim_id"]: r["verdict"] for r in shown} == {
        cid: r["verdict"] for cid, r in expected.items()}
    for r in shown:
        want = expected[r["claim_id"]]
        assert r["text"] == want["text"]
        assert r["confidence"] == (want["confidence"] or "—")
        assert r["fragile"] == {1: "fragile", 0: "no"}.get(want["fragile"], "—")
    status = browser.find_element(By.CSS_SELECTOR, "#fwsurvey-verdicts .verdicts-status").text
    assert status == f"{len(expected)} claims, newest verdict of each (canned query" \
                     " verdict_summary)."
    # A claim's link opens its evidence.
    browser.get(base + shown[0]["href"])
    WebDriverWait(browser, 20).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "table.rows-and-columns")))
    assert browser.find_element(By.TAG_NAME, "h1").text == f"Claim: {shown[0]['text']}"
    assert _severe_errors(browser) == []


def test_chart_link_renders_a_datasette_vega_chart(browser, site):
    base, db = site
    store = Store(db)
    frameworks = store.query("SELECT count(DISTINCT framework) AS n FROM pypi_releases"
                             " WHERE is_prerelease = 0 AND yanked = 0")[0]["n"]
    store.close()
    assert frameworks == 2

    # The chart must draw under the content security policy `fwsurvey serve` sends.
    policy = requests.get(f"{base}/fwsurvey/releases_per_year", timeout=10).headers
    assert "frame-ancestors 'none'" in policy["Content-Security-Policy"]
    browser.get(f"{base}/fwsurvey/releases_per_year")
    link = WebDriverWait(browser, 20).until(
        EC.element_to_be_clickable((By.PARTIAL_LINK_TEXT, "Chart: releases per year")))
    link.click()  # the link documented in datasette.yml: page + #g.mark=bar&...
    canvas = WebDriverWait(browser, 30).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, ".vega-embed canvas")))
    assert "#g.mark=bar" in browser.current_url
    assert "g.x_column=year" in browser.current_url
    # Vega draws asynchronously: wait until the canvas holds the bars of both frameworks.
    paint = """
        const c = arguments[0];
        const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let painted = 0; const colours = {};
        for (let i = 0; i < data.length; i += 4) {
            const [r, g, b, a] = [data[i], data[i + 1], data[i + 2], data[i + 3]];
            if (a < 200 || (r > 240 && g > 240 && b > 240)) continue;
            painted++;
            if (Math.max(r, g, b) - Math.min(r, g, b) > 60) {  // saturated: a bar, not an axis
                const key = r + ',' + g + ',' + b; colours[key] = (colours[key] || 0) + 1;
            }
        }
        return {width: c.width, height: c.height, painted: painted,
                bar_colours: Object.values(colours).filter(n => n > 100).length};
    """
    WebDriverWait(browser, 30).until(
        lambda d: d.execute_script(paint, canvas)["bar_colours"] >= 2)
    stats = browser.execute_script(paint, canvas)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    _save(browser, "chart")
    canvas.screenshot(str(ARTIFACTS / "chart-canvas.png"))
    (ARTIFACTS / "chart-stats.json").write_text(json.dumps(stats, indent=2))
    assert stats["width"] > 200 and stats["height"] > 100, stats
    assert stats["painted"] > 0.02 * stats["width"] * stats["height"], stats
    assert stats["bar_colours"] >= frameworks, stats  # one colour per framework
    # The plugin's own controls, set from the fragment.
    assert browser.find_element(
        By.CSS_SELECTOR, "form.datasette-vega input[value=bar]").is_selected()
    assert _severe_errors(browser) == []
