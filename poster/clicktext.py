"""click's own messages (usage errors, prompts, help headings) in poster's catalog.

click marks its messages with the standard gettext functions, imported into each of its
modules (`from gettext import gettext as _`). gettext's global domain would take the
language from the environment only (not the config's `language`) and needs compiled `.mo`
files, which a checkout may not have. So `install` points those names in click's modules at
poster's own catalog, and this module lists click's messages so that the extractor puts them
in poster.po beside poster's. tests/test_clicktext.py compares the list with the installed
click: an upgrade that adds a message fails the suite instead of showing English.
"""

from __future__ import annotations

import importlib

from poster import i18n
from poster.i18n import N_


def NN_(singular: str, plural: str) -> tuple[str, str]:
    """Mark a singular/plural pair for extraction only (click translates it with ngettext)."""
    return singular, plural


# click's modules that `import click` loads and that import gettext's functions under
# these names. click.shell_completion and click._termui_impl (pager, editor, progress bar)
# are loaded only by features poster does not use: their messages are not listed.
MODULES = (
    "click.core",
    "click.decorators",
    "click.exceptions",
    "click.formatting",
    "click.parser",
    "click.termui",
    "click.types",
    "click.utils",
)

MESSAGES = (
    N_("(dynamic)"),
    N_("Aborted!"),
    N_("Argument {name!r} takes {nargs} values."),
    N_("Arguments take exactly one parameter declaration, got {length}: {decls}."),
    N_("Boolean option {decl!r} cannot use the same flag for true/false."),
    N_("Choice({choices})"),
    N_("Choose from:\n\t{choices}"),
    N_("Commands"),
    N_("Confirm the action without prompting."),
    N_("Could not determine name for option with declarations {decls!r}"),
    N_("Could not open file {filename!r}: {message}"),
    N_("DeprecationWarning: The command {name!r} is deprecated.{extra_message}"),
    N_("DeprecationWarning: The {param_type} {name!r} is deprecated.{extra_message}"),
    N_("Do you want to continue?"),
    N_("Error: The two entered values do not match."),
    N_("Error: invalid input"),
    N_("Error: {message}"),
    N_("Invalid start character for option ({option})"),
    N_("Invalid value for {param_hint}: {message}"),
    N_("Invalid value: {message}"),
    N_("Missing argument"),
    N_("Missing command."),
    N_("Missing option"),
    N_("Missing parameter"),
    N_("Missing parameter: {param_name}"),
    N_("Missing {param_type}"),
    N_("Name '{name}' defined twice"),
    N_(
        "No options defined but a name was passed ({name}). Did you mean to declare an"
        " argument instead? Did you mean to pass '--{name}'?"
    ),
    N_("No such command {name!r}."),
    N_("No such option {name!r}."),
    N_("Option {name!r} does not take a value."),
    N_("Options"),
    N_("Positional arguments"),
    N_("Press any key to continue..."),
    N_("Repeat for confirmation"),
    N_("Show the version and exit."),
    N_("Show this message and exit."),
    N_("Try '{command} {option}' for help."),
    N_("Unknown color {colour!r}"),
    N_("Unknown standard stream '{name}'"),
    N_("Usage:"),
    N_("Value must be an iterable."),
    N_("default: {default}"),
    N_("deprecated"),
    N_("directory"),
    N_("env var: {var}"),
    N_("file"),
    N_("path"),
    N_("unknown error"),
    N_("{name} {filename!r} does not exist."),
    N_("{name} {filename!r} is a directory."),
    N_("{name} {filename!r} is a file."),
    N_("{name} {filename!r} is not executable."),
    N_("{name} {filename!r} is not readable."),
    N_("{name} {filename!r} is not writable."),
    N_("{value!r} is not a valid UUID."),
    N_("{value!r} is not a valid boolean. Recognized values: {states}"),
    N_("{value!r} is not a valid {number_type}."),
    N_("{value} is not in the range {range}."),
    N_("%(prog)s, version %(version)s"),
)

PLURALS = (
    NN_("Got unexpected extra argument ({args})", "Got unexpected extra arguments ({args})"),
    NN_("Takes {nargs} values but 1 was given.", "Takes {nargs} values but {len} were given."),
    NN_("Did you mean {possibility}?", "(Did you mean one of: {possibilities}?)"),
    NN_("Option {name!r} requires an argument.", "Option {name!r} requires {nargs} arguments."),
    NN_("{value!r} is not {choice}.", "{value!r} is not one of {choices}."),
    NN_("{value!r} does not match the format {format}.", "{value!r} does not match the formats {formats}."),
    NN_(
        "{len_type} values are required, but {len_value} was given.",
        "{len_type} values are required, but {len_value} were given.",
    ),
)


def install() -> None:
    """Make click translate through poster's catalog, in whatever language poster has set
    when click speaks (the language is a context variable of poster.i18n, read per call)."""
    for name in MODULES:
        module = importlib.import_module(name)
        if hasattr(module, "_"):
            module._ = i18n._  # type: ignore[attr-defined]
        if hasattr(module, "ngettext"):
            module.ngettext = i18n.ngettext  # type: ignore[attr-defined]
