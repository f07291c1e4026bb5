"""Config validation (issue 10): every float key finite and in range, from --set and from TOML
files alike; one line and exit code 2 from the command line, before a run folder exists."""

import math

import pytest

from rlcl.train import main
from rlcl.config import FIELDS, build_config
from rlcl.errors import ConfigError

FLOAT_KEYS = [name for name, f in FIELDS.items() if f.type == "float"]


def test_the_float_keys_are_found():
    assert {"learning_rate", "gamma", "vf_coef", "guard_z", "momentum"} <= set(FLOAT_KEYS)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("key", FLOAT_KEYS)
def test_non_finite_float_is_refused(key, value):
    with pytest.raises(ConfigError, match=f"^{key} must be a finite number, got"):
        build_config({key: value})


def test_an_int_too_large_for_a_float_is_refused():
    with pytest.raises(ConfigError, match="'learning_rate' must be a finite number"):
        build_config({"learning_rate": 10**400})  # TOML integers are unbounded


@pytest.mark.parametrize("key", ["guard_z", "guard_max_update_ratio"])
def test_guard_thresholds_must_be_positive(key):
    with pytest.raises(ConfigError, match=f"{key} must be > 0"):
        build_config({key: 0.0})


def one_line_error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlcl: error:"), lines
    return lines[0]


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "+nan"])
def test_cli_refuses_non_finite_set(tmp_path, capsys, text):
    code = main(["ppo", "CartPole", "--runs-dir", str(tmp_path / "runs"), "--no-progress",
                 "--set", f"learning_rate={text}"])
    assert code == 2
    assert "learning_rate must be a finite number" in one_line_error(capsys)
    assert not (tmp_path / "runs").exists()


def test_cli_refuses_non_finite_toml_file(tmp_path, capsys):
    path = tmp_path / "mine.toml"
    path.write_text("learning_rate = 0.01\nguard_z = inf\n")
    code = main(["ppo", "CartPole", "--config", str(path), "--runs-dir", str(tmp_path / "runs")])
    assert code == 2
    assert "guard_z must be a finite number, got inf" in one_line_error(capsys)
    assert not (tmp_path / "runs").exists()


def test_a_retired_key_is_one_line_that_says_what_replaced_it(tmp_path, capsys):
    """vector_env (gymnasium's vector CartPole) gave way to env_backend = "device" (issue 11)."""
    code = main(["ppo", "CartPole", "--runs-dir", str(tmp_path / "runs"), "--no-progress",
                 "--set", "vector_env=true"])
    assert code == 2
    assert "'vector_env' was removed: env_backend = \"device\"" in one_line_error(capsys)
    assert not (tmp_path / "runs").exists()
