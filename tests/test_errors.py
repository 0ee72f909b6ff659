"""Library errors name the setting at fault; the CLI shows it as the command's flag."""

import pytest
from typer.testing import CliRunner

from dgan_al.cli import app
from dgan_al.errors import UserError
from dgan_al.workflows.toy_real_test import make_real_test


def test_library_errors_name_settings_and_the_cli_shows_them_as_flags(tmp_path):
    with pytest.raises(UserError) as caught:
        make_real_test(tmp_path / "t", n=0)
    assert str(caught.value) == "n: must be at least 1, got 0 (e.g. 100)"  # the library: the setting's name
    result = CliRunner().invoke(app, ["toy", "real-test", str(tmp_path / "t"), "--n", "0"])
    assert result.exit_code == 2 and "--n: must be at least 1, got 0" in result.output  # the CLI: its flag
    assert not (tmp_path / "t").exists()


def test_a_setting_that_is_not_a_flag_of_the_command_keeps_its_name(tmp_path):
    err = UserError("must be in (0, 1]", setting="band", path=tmp_path / "dgan-al.toml", fix="edit it")
    assert err.render() == f"{tmp_path / 'dgan-al.toml'}: band: must be in (0, 1] (edit it)"
    assert err.render("--band") == f"{tmp_path / 'dgan-al.toml'}: --band: must be in (0, 1] (edit it)"
