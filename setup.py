"""Only what pyproject.toml cannot say: compile the message catalogs (.po → .mo) into the build,
so every wheel and sdist install carries them (a wheel without .mo files silently shows English;
tests/test_i18n.py builds the wheel and looks for them)."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithCatalogs(build_py):
    def run(self) -> None:
        super().run()
        from babel.messages.mofile import write_mo
        from babel.messages.pofile import read_po

        for po in sorted(Path("poster/locale").glob("*/LC_MESSAGES/*.po")):
            language = po.parts[-3]
            with po.open("rb") as fh:
                catalog = read_po(fh, locale=language, domain=po.stem)
            mo = Path(self.build_lib) / po.with_suffix(".mo")
            mo.parent.mkdir(parents=True, exist_ok=True)
            with mo.open("wb") as fh:
                write_mo(fh, catalog)


setup(cmdclass={"build_py": BuildPyWithCatalogs})
