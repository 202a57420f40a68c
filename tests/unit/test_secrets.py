"""Secret files are never indexed by default; a setting widens or narrows the list."""

from __future__ import annotations

from pathlib import Path

import pytest

from domain.discovery import discover
from domain.secrets import SecretPolicy
from tests.support import make_repo

SECRETS = [".env", ".env.production", "config/prod.env", "certs/server.pem", "tls/site.key", "home/.ssh/id_rsa",
           "id_rsa.pub", "id_ed25519", ".npmrc", ".pypirc", ".netrc", "gcp/credentials-prod.json",
           "Credentials.JSON", ".aws/credentials", "deploy/.docker/config.json", "infra/prod.tfvars"]
ORDINARY = [".env.example", "src/environment.py", "keys.py", "docs/pem-format.md", "credentials.py",
            "monkey.txt", "config.json", "README.md"]


@pytest.mark.parametrize("path", SECRETS)
def test_secret_files_are_recognised_by_default(path: str) -> None:
    assert SecretPolicy().is_secret(path)


@pytest.mark.parametrize("path", ORDINARY)
def test_ordinary_files_are_not_secrets(path: str) -> None:
    assert not SecretPolicy().is_secret(path)


def test_the_setting_can_widen_and_narrow_the_list() -> None:
    policy = SecretPolicy.configured(extra="*.secret, vault/*", allow="*.pem")
    assert policy.is_secret("app/db.secret") and policy.is_secret("x/vault/token.txt")
    assert not policy.is_secret("certs/ca.pem")
    assert policy.is_secret(".env")


def test_discovery_never_lists_secrets_and_counts_them_as_skipped(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"app.py": "x = 1\n", ".env": "TOKEN=abc\n", "keys/id_ed25519": "KEY\n",
                                      "deploy/prod.pem": "-----BEGIN PRIVATE KEY-----\n", ".env.example": "TOKEN=\n"})
    found = discover(repo, max_file_bytes=10_000)
    assert [f.path for f in found.files] == [".env.example", "app.py"]
    assert found.skipped["secret"] == 3
    allowed = discover(repo, max_file_bytes=10_000, secrets=SecretPolicy.configured(allow=".env"))
    assert ".env" in [f.path for f in allowed.files] and allowed.skipped["secret"] == 2
