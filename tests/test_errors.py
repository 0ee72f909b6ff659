"""Library errors name the setting at fault; the CLI shows it as the command's flag."""

import pytest
from typer.testing import CliRunner

from dgan_al.cli import app
from dgan_al.errors import UserError, quote
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


def test_quote_cuts_long_text_and_says_how_long_it_was():
    assert quote("abcd") == "'abcd'"
    assert quote("a" * 1_000_000) == "'" + "a" * 60 + "…' (1000000 characters)"
    assert quote("a" * 60) == "'" + "a" * 60 + "'"  # at the limit: whole
    assert quote("x" * 100, limit=10) == "'xxxxxxxxxx…' (100 characters)"
    escaped = quote("\x00" * 100, limit=20)  # escapes count as they print: \x00 is 4 characters
    assert escaped == "'" + "\\x00" * 5 + "…' (100 characters)"
    assert quote(list(range(1000)), limit=20) == "[0, 1, 2, 3, 4, 5, …" and quote(None) == "None"
