"""Alembic migrations; a package only so that installs ship env.py and the versions."""
