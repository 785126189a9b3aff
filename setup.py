"""Package discovery and package data; the metadata lives in pyproject.toml.

The email templates stay where people look for them, in templates/emails/ at the top of the
repository, and ship inside the package as `services.email.templates` (where
services/email/render.py finds them once installed): pyproject.toml alone cannot map a
folder from outside the package tree into it.
"""

from setuptools import find_namespace_packages, setup

TEMPLATES = "services.email.templates"
# Non-Python files any package folder may hold (templates, static assets, Alembic's mako, the
# gettext catalogs of services/locale/: .po sources and the compiled .mo files twofa reads).
DATA = ["*.txt", "*.html", "*.css", "*.js", "*.svg", "*.png", "*.ico", "*.woff2", "*.mako",
        "*.po", "*.pot", "*.mo"]

setup(
    packages=[*find_namespace_packages(include=["services*", "workers*"],
                                       exclude=["*.__pycache__"]), TEMPLATES],
    package_dir={TEMPLATES: "templates"},
    package_data={"": DATA, TEMPLATES: ["emails/*/*.txt", "emails/*/*.html"]},
)
