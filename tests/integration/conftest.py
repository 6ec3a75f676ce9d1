import pytest

from harness import DevKafka, Mosquitto


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
