"""The Portuguese catalog: complete, compiled, and chosen by the locale variables."""

import argparse
import ast
import os
import re
import subprocess
import sys

import polib
import pytest

import i18n
from conftest import PROJECT_DIR

SOURCES = ["errors.py", "mnist_io.py", "weights.py", "train.py", "predict.py", "bench.py",
           "i18n.py", "digit_image.py", "plots.py"]
# Calls whose first argument is text for the user, so it must go through _() or ngettext().
MESSAGE_CALLS = {"UserError", "print", "OSError"}

# The argparse messages that users of these programs can meet. Their wording is that of the
# Python versions this project supports, and the catalog must translate each one.
ARGPARSE_MESSAGES = [
    "usage: ", "options", "positional arguments", "show this help message and exit",
    "argument %(argument_name)s: %(message)s", "unrecognized arguments: %s",
    "invalid choice: %(value)r (choose from %(choices)s)", "expected one argument",
    "invalid %(type)s value: %(value)r", "the following arguments are required: %s",
]
PLACEHOLDER = re.compile(r"\{[^{}]*\}|%\([a-z_]+\)[sr]|%[sr]")


def catalog():
    return polib.pofile(str(i18n.CATALOG))


def source_calls():
    """Yield (file name, call node) for every call to a plain name in the project's sources."""
    for name in SOURCES:
        tree = ast.parse((PROJECT_DIR / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                yield name, node


def code_messages():
    """Return the msgids of every _() and ngettext() call with literal strings in the sources."""
    messages = set()
    for _name, node in source_calls():
        if (node.func.id in ("_", "ngettext") and node.args
                and isinstance(node.args[0], ast.Constant)):
            messages.add(node.args[0].value)
    return messages


def test_no_untranslated_literal_messages():
    for name, node in source_calls():
        if node.func.id in MESSAGE_CALLS and node.args:
            first = node.args[0]
            literal = isinstance(first, ast.JoinedStr) or (
                isinstance(first, ast.Constant) and isinstance(first.value, str))
            assert not literal, f"{name}:{node.lineno}: message not wrapped in _()"
        for keyword in node.keywords:
            if keyword.arg in ("help", "description", "metavar"):
                value = keyword.value
                literal = isinstance(value, ast.JoinedStr) or (
                    isinstance(value, ast.Constant) and isinstance(value.value, str)
                    and not value.value.isupper())  # N, K, P stand as they are
                assert not literal, f"{name}:{node.lineno}: {keyword.arg} not wrapped in _()"


def test_code_messages_found():
    assert len(code_messages()) > 100


def test_every_message_translated():
    translations = {entry.msgid: entry.msgstr or entry.msgstr_plural.get(0)
                    for entry in catalog()}
    for message in sorted(code_messages()) + ARGPARSE_MESSAGES:
        assert translations.get(message), f"no Portuguese for {message!r}"


def test_translations_keep_placeholders():
    for entry in catalog():
        if entry.msgid_plural:
            continue
        assert sorted(PLACEHOLDER.findall(entry.msgid)) == sorted(
            PLACEHOLDER.findall(entry.msgstr)), entry.msgid


def test_compiled_catalog_matches_source():
    compiled = polib.mofile(str(i18n.CATALOG.with_suffix(".mo")))
    source = {entry.msgid: entry.msgstr for entry in catalog() if not entry.msgid_plural}
    assert {entry.msgid: entry.msgstr for entry in compiled if not entry.msgid_plural} == source


@pytest.mark.parametrize("environment, portuguese", [
    ({"LANG": "pt_BR.UTF-8"}, True),
    ({"LANG": "pt_PT.UTF-8"}, True),
    ({"LANG": "C"}, False),
    ({"LANG": "en_US.UTF-8"}, False),
    ({}, False),
    ({"LC_ALL": "pt_BR.UTF-8", "LANG": "C"}, True),
    ({"LC_ALL": "C", "LANG": "pt_BR.UTF-8"}, False),
    ({"LC_MESSAGES": "pt_BR", "LANG": "en_US"}, True),
    ({"LANGUAGE": "pt_BR:en", "LANG": "C"}, True),
    ({"LANGUAGE": "fr:pt", "LANG": "C"}, True),
    ({"LANGUAGE": "en:pt", "LANG": "pt_BR"}, False),
])
def test_language_choice(environment, portuguese):
    assert i18n.wants_portuguese(environment) is portuguese


def run_in(language, *args):
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES")}
    environment["LANG"] = language
    return subprocess.run([sys.executable, str(PROJECT_DIR / "train.py"), *args],
                          capture_output=True, text=True, timeout=600, env=environment)


def test_help_in_portuguese():
    result = run_in("pt_BR.UTF-8", "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("uso: train.py")
    assert "Treina a rede convolucional" in result.stdout
    assert "mostra esta mensagem de ajuda e sai" in result.stdout
    assert "(padrão: pesos.json)" in result.stdout
    assert "usage" not in result.stdout


def test_help_in_english_for_c_locale():
    result = run_in("C", "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: train.py")
    assert "Train the convolutional network" in result.stdout
    assert "(default: pesos.json)" in result.stdout


def test_flag_error_in_portuguese():
    result = run_in("pt_BR.UTF-8", "--epochs", "zero")
    assert result.returncode == 2
    assert result.stderr.startswith("erro: argumento --epochs: valor inteiro inválido: 'zero'")


def test_training_run_in_portuguese(tmp_path, mnist_dir):
    result = run_in("pt_BR.UTF-8", "--epochs", "1", "--train-size", "500", "--test-size", "100",
                    "--weights", str(tmp_path / "pesos.json"), "--data-dir", str(mnist_dir))
    assert result.returncode == 0, result.stderr
    assert "treinando com 500 imagens, testando com 100" in result.stdout
    assert re.search(r"época  1/1  MSE no teste 0,\d{6}  acurácia \d+/100 \(\d+,\d\d%\)",
                     result.stdout)
    assert "pesos salvos em" in result.stdout
    assert "dígito previsto: " in result.stdout
    assert "rótulo esperado: 7" in result.stdout
    for english in ("training on", "saved the weights", "predicted digit", "expected label"):
        assert english not in result.stdout


def test_argparse_words_use_our_translation():
    assert argparse._ is i18n._
