"""The language of what the programs print: English, or Brazilian Portuguese for a pt locale.

Messages go through gettext. The Portuguese catalog is locale/pt_BR/LC_MESSAGES/cnn.po, and its
compiled form cnn.mo, which gettext reads, is committed beside it. After editing the .po file,
rebuild the .mo with:

    python i18n.py compile

The language comes from the first of LANGUAGE, LC_ALL, LC_MESSAGES and LANG that is set, as
command-line tools choose it: any value starting with "pt" (pt_BR.UTF-8, pt_PT, pt) gives
Portuguese, anything else English. LANGUAGE may list several languages separated by colons; the
first one that is Portuguese or English decides.
"""

import argparse
import gettext
import os
import sys
from pathlib import Path

DOMAIN = "cnn"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
CATALOG = LOCALE_DIR / "pt_BR" / "LC_MESSAGES" / f"{DOMAIN}.po"


def wants_portuguese(environment=os.environ):
    """Return whether the locale variables in environment ask for Portuguese."""
    for variable in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = environment.get(variable, "")
        if not value:
            continue
        if variable == "LANGUAGE":
            for language in value.split(":"):
                if language.startswith("pt"):
                    return True
                if language.startswith("en"):
                    return False
            continue
        return value.startswith("pt")
    return False


def load_translation(portuguese):
    """Return the gettext translation for Portuguese, or the identity one for English."""
    if not portuguese:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=["pt_BR"], fallback=True)


TRANSLATION = load_translation(wants_portuguese())
_ = TRANSLATION.gettext
ngettext = TRANSLATION.ngettext
DECIMAL_SEPARATOR = "," if isinstance(TRANSLATION, gettext.GNUTranslations) else "."

# argparse looks its own words up ("usage:", "show this help message and exit", its error
# messages) through a module-level function named _, at the moment it prints them. Pointing that
# name at this translation makes them follow the same language as ours; the catalog contains them.
argparse._ = _
argparse.ngettext = ngettext


def number(value, digits=None):
    """Return value with the decimal separator of the language: with the given digits after it,
    or, without digits, as Python's shortest form of the number (0.1, 1e-05)."""
    text = str(value) if digits is None else f"{value:.{digits}f}"
    return text.replace(".", DECIMAL_SEPARATOR)


def compile_catalog():
    """Write the .mo file compiled from the .po catalog beside it."""
    import polib

    polib.pofile(str(CATALOG)).save_as_mofile(str(CATALOG.with_suffix(".mo")))


if __name__ == "__main__":
    if sys.argv[1:] != ["compile"]:
        sys.exit(_("usage: python i18n.py compile"))
    compile_catalog()
    print(_("wrote {path}").format(path=CATALOG.with_suffix(".mo")))
