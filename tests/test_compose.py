"""docker-compose.yml, the Procfiles, .env.example and scripts/run.py agree with README.md."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
COMPOSE_FILE = ROOT / "docker-compose.yml"
APP_SERVICES = ("web", "worker", "beat", "emulator")
# The one-shot service that migrates as the database's owner and grants the app's role.
MIGRATE = "migrate"
ENV_NAME = re.compile(r"`([A-Z][A-Z0-9_]*[A-Z0-9])`")


# --------------------------------------------------------------------------- README parsing


def readme_table(readme: str, header: tuple[str, ...]) -> list[list[str]]:
    """Rows (cells stripped) of the Markdown table whose header row starts with `header`."""
    lines = readme.splitlines()
    for i, line in enumerate(lines):
        cells = [c.strip().lower() for c in line.strip().strip("|").split("|")]
        if tuple(cells[: len(header)]) == header:
            rows = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append([c.strip() for c in row.strip().strip("|").split("|")])
            return rows
    raise AssertionError(f"README.md has no table with header {' | '.join(header)}")


def first_code_span(cell: str) -> str:
    match = re.search(r"`([^`]+)`", cell)
    assert match, f"no `code` in README cell {cell!r}"
    return match.group(1)


def readme_app_environment(readme: str) -> set[str]:
    match = re.search(r"\*\*App environment\*\*(.*?)\n\n", readme, re.S)
    assert match, "README.md has no **App environment** paragraph"
    first_sentence = match.group(1).split(".\n")[0].split(". ")[0]
    return set(ENV_NAME.findall(first_sentence))


def readme_compose_services(readme: str) -> dict[str, dict]:
    """service -> {"command": [argv] or None (image default), "env": {names}}."""
    app_env = readme_app_environment(readme)
    services = {}
    for service_cell, command_cell, env_cell in readme_table(readme, ("service", "command", "environment variables")):
        name = first_code_span(service_cell)
        command = None if command_cell.startswith("image default") else shlex.split(first_code_span(command_cell))
        env = set(ENV_NAME.findall(env_cell))
        if "app environment" in env_cell:
            env |= app_env
        services[name] = {"command": command, "env": env}
    return services


def readme_processes(readme: str) -> dict[str, tuple[str, str]]:
    """make run's processes: name -> (command, mode)."""
    return {
        first_code_span(name): (first_code_span(command), mode.strip().lower())
        for name, command, mode in readme_table(readme, ("process", "command", "mode"))
    }


def readme_config_variables(readme: str) -> set[str]:
    return {first_code_span(row[0]) for row in readme_table(readme, ("variable", "default", "meaning"))}


# --------------------------------------------------------------------------- compose parsing


def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def compose_command(service: dict) -> list[str] | None:
    command = service.get("command")
    if command is None:
        return None
    return list(command) if isinstance(command, list) else shlex.split(command)


def compose_env_names(service: dict) -> set[str]:
    env = service.get("environment") or {}
    if isinstance(env, dict):
        return set(env)
    return {item.split("=", 1)[0] for item in env}


def parse_procfile(path: Path) -> dict[str, str]:
    processes = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            processes[name.strip()] = command.strip()
    return processes


# --------------------------------------------------------------------------- schema


def check_jsonschema(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_compose_file_matches_the_compose_specification():
    result = check_jsonschema(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_an_invalid_compose_file(tmp_path):
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(
        "services:\n  web:\n    image: x\n    depends_on:\n      db:\n        condition: when_i_feel_like_it\n"
    )
    result = check_jsonschema(bad)
    assert result.returncode != 0, result.stdout


# --------------------------------------------------------------------------- compose vs README


def test_readme_documents_exactly_the_compose_services():
    assert set(readme_compose_services(README)) == set(compose()["services"])


@pytest.mark.parametrize("name", ["postgres", "redis", MIGRATE, *APP_SERVICES])
def test_compose_service_command_matches_readme(name):
    documented = readme_compose_services(README)[name]["command"]
    assert compose_command(compose()["services"][name]) == documented


@pytest.mark.parametrize("name", ["postgres", "redis", MIGRATE, *APP_SERVICES])
def test_compose_service_environment_matches_readme(name):
    documented = readme_compose_services(README)[name]["env"]
    assert compose_env_names(compose()["services"][name]) == documented


def test_app_services_use_postgres_redis_and_wait_for_them():
    services = compose()["services"]
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://"), name
        assert env["CELERY_BROKER_URL"] == "redis://redis:6379/0", name
        assert "${DJANGO_SECRET_KEY:?" in env["DJANGO_SECRET_KEY"], f"{name}: the secret key must be required"
        depends = services[name]["depends_on"]
        assert depends["postgres"] == {"condition": "service_healthy"}, name
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}, name
    for name in ("postgres", "redis", "web"):
        assert "healthcheck" in services[name], name
    assert services["emulator"]["profiles"] == ["emulator"]
    assert all("profiles" not in services[n] for n in ("postgres", "redis", "web", "worker", "beat"))


def test_only_migrate_connects_as_the_owner_and_the_app_as_its_own_role():
    services = compose()["services"]
    migrate = services[MIGRATE]
    command = compose_command(migrate)
    assert command[:2] == ["sh", "-c"]
    assert command[2] == "python manage.py migrate --database owner --noinput && python manage.py db_app_role"
    owner = migrate["environment"]["DATABASE_OWNER_URL"]
    app = migrate["environment"]["DATABASE_URL"]
    postgres = services["postgres"]["environment"]
    assert owner.startswith(f"postgres://{postgres['POSTGRES_USER']}:"), "the owner is the image's own user"
    assert owner.rsplit("/", 1)[1] == app.rsplit("/", 1)[1] == postgres["POSTGRES_DB"]
    assert app.split("://")[1].split(":")[0] != postgres["POSTGRES_USER"]
    assert migrate["restart"] == "no" and migrate["depends_on"]["postgres"] == {"condition": "service_healthy"}
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert "DATABASE_OWNER_URL" not in env, name
        assert env["DATABASE_URL"] == app, name
        assert "migrate" not in " ".join(compose_command(services[name])), name
    assert services["web"]["depends_on"][MIGRATE] == {"condition": "service_completed_successfully"}


def test_redis_persists_and_never_evicts():
    command = compose_command(compose()["services"]["redis"])
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"


def test_image_runs_as_a_non_root_user():
    users = re.findall(r"^USER\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert users and users[-1] not in {"root", "0"}


# --------------------------------------------------------------------------- make run vs README


def test_procfiles_match_the_make_run_table():
    documented = readme_processes(README)
    both = {name: cmd for name, (cmd, mode) in documented.items() if mode == "both"}
    everything = {name: cmd for name, (cmd, _mode) in documented.items()}
    assert parse_procfile(ROOT / "Procfile") == both
    assert parse_procfile(ROOT / "Procfile.local") == everything
    assert documented["emulator"][1] == "local"


def test_web_is_the_first_process_so_honcho_gives_it_port():
    # honcho hands $PORT to the first process and +100 per process after it.
    for procfile in ("Procfile", "Procfile.local"):
        assert next(iter(parse_procfile(ROOT / procfile))) == "web", procfile


# --------------------------------------------------------------------------- configuration docs


def _names_read_by(path: Path) -> set[str]:
    text = path.read_text()
    found = set(re.findall(r"""env(?:\.\w+)?\(\s*["']([A-Z][A-Z0-9_]+)["']""", text))
    found |= set(re.findall(r"""(?:environ|env)\.(?:get|setdefault)\(\s*["']([A-Z][A-Z0-9_]+)["']""", text))
    found |= set(re.findall(r"""environ\[\s*["']([A-Z][A-Z0-9_]+)["']\s*\]""", text))
    return found


def test_every_variable_the_project_reads_is_in_the_configuration_table():
    documented = readme_config_variables(README)
    read = _names_read_by(ROOT / "cognito_admin" / "settings.py") | _names_read_by(ROOT / "scripts" / "run.py")
    read -= {"PATH", "PYTHONUNBUFFERED", "DJANGO_SETTINGS_MODULE"}
    assert read - documented == set()


def test_every_compose_variable_is_in_the_configuration_table():
    documented = readme_config_variables(README)
    services = compose()["services"]
    names = set().union(*(compose_env_names(services[n]) for n in (*APP_SERVICES, MIGRATE)))
    interpolated = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE_FILE.read_text()))
    assert (names | interpolated) - documented == set()


def test_env_example_lists_exactly_the_documented_variables():
    example = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert example == readme_config_variables(README)


def test_readme_starts_with_the_two_commands():
    first_block = re.search(r"```sh\n(.*?)```", README, re.S).group(1)
    assert [line.split()[:2] for line in first_block.strip().splitlines()] == [["make", "run"], ["make", "test"]]
    assert README.index("```sh") < README.index("\n## ")


# --------------------------------------------------------------------------- scripts/run.py


@pytest.fixture
def run_script():
    spec = importlib.util.spec_from_file_location("make_run_script", ROOT / "scripts" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def no_aws(monkeypatch, tmp_path):
    """An environment in which boto3's credential chain finds nothing (and asks no server)."""
    for key in list(os.environ):
        if key.startswith("AWS_") or key == "COGNITO_LOCAL_MODE":
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_make_run_picks_local_mode_without_credentials_or_endpoint(run_script, no_aws):
    assert run_script.decide_mode(os.environ) == "local"


def test_make_run_picks_aws_mode_with_credentials(run_script, no_aws, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example")
    assert run_script.decide_mode(os.environ) == "aws"


def test_make_run_picks_aws_mode_with_an_endpoint(run_script, no_aws, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", "http://127.0.0.1:1")
    assert run_script.decide_mode(os.environ) == "aws"


@pytest.mark.parametrize(("value", "mode"), [("true", "local"), ("false", "aws")])
def test_cognito_local_mode_forces_make_runs_mode(run_script, no_aws, monkeypatch, value, mode):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example")
    monkeypatch.setenv("COGNITO_LOCAL_MODE", value)
    assert run_script.decide_mode(os.environ) == mode


def test_local_mode_points_boto3_at_the_emulator(run_script):
    env = {"COGNITO_EMULATOR_PORT": "9333", "AWS_PROFILE": "prod", "DJANGO_DEBUG": "false"}
    run_script.prepare_local(env)
    assert env["AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER"] == "http://127.0.0.1:9333"
    assert env["AWS_ACCESS_KEY_ID"] == env["AWS_SECRET_ACCESS_KEY"] == "testing"
    assert "AWS_PROFILE" not in env
    assert env["AWS_REGION"] == "us-east-1"
    assert env["COGNITO_LOCAL_MODE"] == "true"
    assert env["DJANGO_DEBUG"] == "false"  # an explicit choice is kept
    fresh: dict[str, str] = {}
    run_script.prepare_local(fresh)
    assert fresh["AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER"] == "http://127.0.0.1:9229"
    assert fresh["DJANGO_DEBUG"] == "true"
