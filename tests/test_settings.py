"""Settings are validated at start: one line naming the setting and what it accepts, exit code 2;
``layerserve --version``; the version defined once; LICENSE; an sdist without broken tests."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import layerserve
from layerserve.server.config import Settings, SettingsError, environment_names
from tests.server import ROOT


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LAYERSERVE_")}
    return subprocess.run([sys.executable, "-m", "layerserve.server", "serve", "--port", "1", *args],
                          env={**clean, **(env or {})}, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(("args", "env", "line"), [
    ((), {"LAYERSERVE_PORT": "abc"}, None),  # the flag --port 1 wins over the variable: started, see below
    (("--port", "abc"), {}, "layerserve: invalid --port 'abc': Input should be a valid integer, unable to parse "
                            "string as an integer; accepted: an integer from 1 to 65535"),
    ((), {"LAYERSERVE_BATCHING": "of"}, "layerserve: invalid LAYERSERVE_BATCHING 'of': Input should be a valid "
                                        "boolean, unable to interpret input; accepted: on or off (also true/false, "
                                        "yes/no, 1/0)"),
    (("--max-body-bytes", "-1"), {}, "layerserve: invalid --max-body-bytes '-1': Input should be greater than or "
                                     "equal to 1; accepted: a positive integer (bytes)"),
    ((), {"LAYERSERVE_REQUEST_TIMEOUT_S": "0"}, "layerserve: invalid LAYERSERVE_REQUEST_TIMEOUT_S '0': Input should "
                                                "be greater than 0; accepted: a number of seconds above 0"),
    ((), {"LAYERSERVE_IO_BINDING": "yes"}, "layerserve: invalid LAYERSERVE_IO_BINDING 'yes': Input should be "
                                           "'auto', 'on' or 'off'; accepted: auto, on or off"),
])
def test_a_bad_setting_stops_the_server_with_one_line(args: tuple[str, ...], env: dict[str, str],
                                                      line: str | None) -> None:
    if line is None:  # a variable overridden by a valid flag is not read
        assert Settings.from_env(env, port="8001").port == 8001
        return
    run = _serve(*args, env=env)
    assert (run.returncode, run.stderr.splitlines(), run.stdout) == (2, [line], "")


def test_every_setting_refuses_what_it_does_not_accept() -> None:
    bad = {"port": "70000", "keep_versions": "0", "write_retries": "-1", "providers": "", "provider_options": "[1]",
           "log_level": "loud", "max_tensor_elements": "0", "max_model_bytes": "0", "max_layers_per_graph": "0",
           "max_records_per_layer": "-3", "max_sessions": "0", "intra_op_threads": "-1", "max_batch_size": "0",
           "max_queue_delay_ms": "-0.5", "require_providers": "maybe", "store": "postgres://db",
           "request_timeout_s": "nan", "host": "", "state_dir": ""}
    for name, value in bad.items():
        with pytest.raises(SettingsError) as caught:
            Settings.from_env({}, **{name: value})
        text = str(caught.value)
        assert text.startswith(f"invalid --{name.replace('_', '-')} ") and "; accepted: " in text, text
        assert "\n" not in text


def test_good_values_from_variables_and_flags() -> None:
    env = {"LAYERSERVE_BATCHING": "off", "LAYERSERVE_TOKEN": "a,b:g1", "LAYERSERVE_PROVIDERS": "cuda, cpu",
           "LAYERSERVE_PROVIDER_OPTIONS": '{"cuda": {"device_id": 1}}', "LAYERSERVE_MAX_QUEUE_DELAY_MS": "0"}
    settings = Settings.from_env(env, port="9000", token=["x"])
    assert (settings.batching, settings.token, settings.providers, settings.port) == (False, ["x"], ["cuda", "cpu"], 9000)
    assert settings.provider_options == {"cuda": {"device_id": 1}} and settings.max_queue_delay_ms == 0.0
    assert len(environment_names()) == len(Settings.model_fields) and "LAYERSERVE_MAX_BODY_BYTES" in environment_names()


def test_version_is_defined_once() -> None:
    run = subprocess.run([sys.executable, "-m", "layerserve.server", "--version"], capture_output=True, text=True,
                         timeout=60, check=False)
    assert (run.returncode, run.stdout.strip()) == (0, f"layerserve {layerserve.__version__}")
    assert importlib.metadata.version("layerserve") == layerserve.__version__
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and "\nversion =" not in pyproject.split("[tool.setuptools")[0]


def test_license_file() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert 'license-files = ["LICENSE"]' in (ROOT / "pyproject.toml").read_text()


@pytest.mark.slow
def test_sdist_ships_the_license_and_no_tests(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--outdir", str(tmp_path), str(ROOT)], check=True,
                   capture_output=True, timeout=300)
    [sdist] = tmp_path.glob("layerserve-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = [n.split("/", 1)[1] for n in archive.getnames() if "/" in n]
    assert "LICENSE" in names and "client/protocol.py" in names and "service/cli.py" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/"))]
