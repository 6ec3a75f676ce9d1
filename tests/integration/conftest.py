import pytest

import harness
from harness import DevKafka, Mosquitto


@pytest.fixture(autouse=True)
def no_sluice_left_behind():
    """A test that fails before stopping its sluice must not leave the process running."""
    yield
    while harness.RUNNING:
        proc = harness.RUNNING.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def mosquitto(tmp_path):
    broker = Mosquitto(tmp_path).start()
    yield broker
    broker.stop()


@pytest.fixture
def kafka(tmp_path):
    cluster = DevKafka(tmp_path).start()
    yield cluster
    cluster.stop()
