"""`interviewer user ...`: staff accounts (admin, recruiter, domain lead) from the command line.

A password typed on the command line would land in shell history, so there is no ``--password``:
either one is generated and printed once, or it is read from stdin (``--password-stdin``).
Every change is written to the audit log as done by the system (no signed-in user).
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.table import Table

from interviewer import accounts
from interviewer.accounts import AccountError
from interviewer.cli._common import UrlOption, open_database, run_or_exit
from interviewer.store.db import session_scope

app = typer.Typer(
    help="Staff accounts: add, list, set a password, deactivate.", no_args_is_help=True
)
console = Console(highlight=False)

RoleOption = typer.Option(..., "--role", help="admin, recruiter or domain_lead.")
EmailArgument = typer.Argument(..., help="The account's email.")
PasswordStdinOption = typer.Option(
    False, "--password-stdin", help="Read the password from stdin instead of generating one."
)


def _session(url: str | None):
    """One transaction on the database at ``url``, migrated to the latest version first."""
    return session_scope(open_database(url, schema="migrate"))


def _stdin_password() -> str:

    if sys.stdin is None:
        raise AccountError("--password-stdin: nothing on stdin; pipe the password in")
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise AccountError("--password-stdin: stdin was empty; pipe the password in")
    return password


def _show_password(email: str, password: str) -> None:
    console.print(f"{email}: password (shown only now): ", end="")
    console.print(password, style="bold", markup=False, soft_wrap=True)


@app.command("add")
def add(
    email: str = typer.Argument(..., help="The email the person signs in with."),
    role: str = RoleOption,
    name: str = typer.Option("", "--name", help="Shown in the web app."),
    password_stdin: bool = PasswordStdinOption,
    url: str | None = UrlOption,
) -> None:
    """Add a staff account; prints a generated password once unless --password-stdin."""

    with run_or_exit():
        password = _stdin_password() if password_stdin else None
        with _session(url) as s:
            new = accounts.create_user(s, email=email, role=role, name=name, password=password)
            email, role_name = new.user.email, new.user.role.value
        console.print(f"added {email} ({role_name})")
        if new.generated:
            _show_password(email, new.password)


@app.command("list")
def list_(url: str | None = UrlOption) -> None:
    """Every account with its role and whether it can sign in."""

    with run_or_exit(), _session(url) as s:
        users = accounts.list_users(s)
        table = Table("email", "name", "role", "status")
        for user in users:
            table.add_row(
                user.email, user.name, user.role.value, "active" if user.active else "deactivated"
            )
    if not users:
        console.print("no accounts yet: `interviewer user add EMAIL --role admin`")
        return
    console.print(table)


@app.command("set-password")
def set_password(
    email: str = EmailArgument,
    password_stdin: bool = PasswordStdinOption,
    url: str | None = UrlOption,
) -> None:
    """Set a new password (printed once unless --password-stdin); ends every session."""

    with run_or_exit():
        password = _stdin_password() if password_stdin else None
        with _session(url) as s:
            new_password = accounts.set_password(s, email, password)
            email = accounts.user_by_email(s, email).email
        console.print(f"{email}: password changed; every session of this account is signed out")
        if password is None:
            _show_password(email, new_password)


@app.command("set-role")
def set_role(
    email: str = EmailArgument,
    role: str = RoleOption,
    url: str | None = UrlOption,
) -> None:
    """Change an account's role."""

    with run_or_exit(), _session(url) as s:
        user = accounts.set_role(s, email, role)
        console.print(f"{user.email} is now {user.role.value}")


@app.command("deactivate")
def deactivate(
    email: str = EmailArgument,
    url: str | None = UrlOption,
) -> None:
    """Stop an account from signing in and end its sessions now (its history stays)."""
    _set_active(email, False, "is deactivated and signed out everywhere", url)


@app.command("activate")
def activate(
    email: str = EmailArgument,
    url: str | None = UrlOption,
) -> None:
    """Let a deactivated account sign in again."""
    _set_active(email, True, "can sign in again", url)


def _set_active(email: str, active: bool, done: str, url: str | None) -> None:

    with run_or_exit(), _session(url) as s:
        user = accounts.set_active(s, email, active)
        console.print(f"{user.email} {done}")
