"""The status page in headless Chromium while traffic flows: its table agrees with
/api/routes, the chart moves, and the tap shows a message the test published. A screenshot is
saved beside the binary (status-page.png) for the notes."""
import json
import os
import shutil
import threading
import time
import uuid

from harness import SLUICE, SluiceProcess, free_port, manifest, route, wait_for
from headless import Browser
from test_admin import TOKEN, get, write_config


def test_status_page_table_chart_and_tap(tmp_path, mosquitto, kafka):
    routes = tmp_path / "routes"
    routes.mkdir()
    manifest(routes, "ra", route("ra", mosquitto.url, ["page/a/#"], kafka.bootstrap, "t.pa"))
    manifest(routes, "rb", route("rb", mosquitto.url, ["page/b/#"], kafka.bootstrap, "t.pb"))
    port = free_port()
    sluice = SluiceProcess(tmp_path, routes, None,
                           extra_args=["-c", str(write_config(tmp_path, f"127.0.0.1:{port}"))])
    sluice.start()
    sluice.wait_log(lambda t: t.count("; receiving") >= 2, 30, "both routes to subscribe")

    stop = threading.Event()

    def traffic():
        i = 0
        while not stop.is_set():
            mosquitto.publish("page/a/dev", [json.dumps({"seq": i + k}) for k in range(20)])
            mosquitto.publish("page/b/dev", [json.dumps({"seq": i})])
            i += 20
            time.sleep(0.2)
    publisher = threading.Thread(target=traffic)
    publisher.start()
    browser = Browser()
    try:
        # The page itself needs no token; its streams do (from the address's #fragment).
        status, body = get(port, "/")
        assert status == 200 and "<canvas" in body
        assert get(port, "/api/events")[0] == 401
        assert get(port, "/api/tap/ra")[0] == 401
        assert get(port, "/api/tap/nope", token=TOKEN)[0] == 404
        browser.open(f"http://127.0.0.1:{port}/?tap=ra#token={TOKEN}")

        def points():
            return int(browser.eval("document.getElementById('chart')?.dataset.points") or 0)
        wait_for(lambda: points() > 0, 15, "the chart to draw its first points")
        first = points()
        time.sleep(2.5)
        assert points() > first, "the chart did not move"
        assert browser.eval("document.getElementById('status')?.textContent") == "live"

        marker = "tap-marker-" + uuid.uuid4().hex
        mosquitto.publish("page/a/dev", [json.dumps({"marker": marker})])

        def tapped():
            return browser.eval(
                "[...document.querySelectorAll('#tap .tap-item')].map(li => li.textContent)")
        wait_for(lambda: any(marker in t for t in tapped()), 10,
                 "the tap to show the published message")
        assert any("page/a/dev" in t for t in tapped())
    finally:
        stop.set()
        publisher.join()

    try:
        # Traffic has stopped: once the page's next update is in, its table says what the API
        # says.
        def rows():
            return browser.eval(
                "[...document.querySelectorAll('#routes tbody tr')].map(tr => ({route: "
                "tr.dataset.route, received: +tr.querySelector('[data-field=received]')"
                ".textContent, delivered: +tr.querySelector('[data-field=delivered]')"
                ".textContent}))")

        def api():
            _, text = get(port, "/api/routes", token=TOKEN)
            return {r["name"]: r["counters"] for r in json.loads(text)}

        def agree():
            a = api()
            table = rows()
            return (len(table) == 2 and
                    all(a[r["route"]]["received"] == r["received"] and
                        a[r["route"]]["delivered"] == r["delivered"] for r in table) and
                    all(c["delivered"] == c["received"] for c in a.values()))
        wait_for(agree, 20, "the page's table to agree with /api/routes")
        assert min(r["received"] for r in rows()) > 0
        shot = tmp_path / "status-page.png"
        browser.screenshot(shot)
        assert shot.stat().st_size > 10000
        shutil.copy(shot, os.path.join(os.path.dirname(SLUICE), "status-page.png"))
    finally:
        browser.close()
    rc, _ = sluice.terminate(30)
    assert rc == 0, sluice.log_text()
