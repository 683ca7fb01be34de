#!/usr/bin/env python3
"""Proves validate.py catches what it claims to: copies infra/, azure.yaml and the files it
cross-checks into a temporary tree, breaks one thing at a time, and expects validate.py to
fail with the matching message (and to pass on the untouched copy)."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]

# (file, old text, new text, expected fragment of a FAIL line)
MUTATIONS = [
    ("infra/main.bicep", "location: location\n  tags: allTags\n}\n\n// ---------------------------------------------------------------------------------------\n// Storage",
     "location: locaton\n  tags: allTags\n}\n\n// ---------------------------------------------------------------------------------------\n// Storage",
     "undefined symbol 'locaton'"),
    ("infra/main.bicep", "toLower(uniqueString(", "toLower(uniqeString(", "unknown function uniqeString()"),
    ("infra/main.bicep", "Microsoft.KeyVault/vaults@2023-07-01", "Microsoft.KeyVault/vaults@2023-07-31", "api version not in the checked list"),
    ("infra/main.bicep", "    runnerSubnetPrefix: runnerSubnetPrefix\n", "    runnerSubnetPrefix: runnerSubnetPrefix\n    subnetPrefix: runnerSubnetPrefix\n", "has no parameter 'subnetPrefix'"),
    ("infra/main.bicep", "network.outputs.runnerSubnetId", "network.outputs.subnetId", "has no output 'subnetId'"),
    ("infra/main.bicep", "    name: 'MAX_RUNNERS'\n", "    name: 'MAX_RUNNER'\n", "DESIGN.md setting MAX_RUNNERS is not an app setting"),
    ("infra/main.bicep", "keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'", "keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e7'", "roleIds.keyVaultSecretsUser must be"),
    ("infra/main.bicep", "    name: 'DRY_RUN'\n    value: dryRun ? 'true' : 'false'\n  }\n", "    name: 'DRY_RUN'\n    value: dryRun ? 'true' : 'false'\n  }\n  {\n    name: 'FUNCTIONS_WORKER_RUNTIME'\n    value: 'custom'\n  }\n", "would break Flex Consumption"),
    ("infra/main.bicep", "enableRbacAuthorization: true", "enableRbacAuthorization: false", "enableRbacAuthorization: true"),
    ("infra/main.bicep", "      name: 'custom'\n      version: '1.0'", "      name: 'python'\n      version: '3.11'", "runtime.name must be 'custom'"),
    ("infra/modules/runner-access.bicep", "  'Microsoft.ContainerInstance/containerGroups/delete'\n", "  'Microsoft.ContainerInstance/containerGroups/delete'\n  'Microsoft.ContainerInstance/*'\n", "custom role actions"),
    ("infra/modules/app-key-sign.bicep", "  'Microsoft.KeyVault/vaults/keys/sign/action'\n", "  'Microsoft.KeyVault/vaults/keys/sign/action'\n  'Microsoft.KeyVault/vaults/keys/decrypt/action'\n", "sign role data actions"),
    ("infra/modules/app-key-sign.bicep", "  scope: appKey\n", "  scope: vault\n", "assigned at the scope of the one key"),
    ("infra/modules/network.bicep", "serviceName: 'Microsoft.ContainerInstance/containerGroups'", "serviceName: 'Microsoft.App/environments'", "delegated to Microsoft.ContainerInstance/containerGroups"),
    ("infra/modules/network.bicep", "  name: vnetName\n  location", "  name: vnetName\n  location: location\n  bad: [\n  location", "syntax error"),
    ("infra/main.bicep", "name: guid(vault.id, identity.id, roleIds.keyVaultSecretsUser)", "name: guid(vault.id, identity.properties.principalId, roleIds.keyVaultSecretsUser)", "must be known at the start of the deployment"),
    ("infra/main.bicep", "var appSettings = concat(", "var appSettings = [for s in storageSettings: s]\nvar appSettings2 = concat(", "a for-expression's array must be known"),
    ("infra/main.parameters.json", '"dryRun": {', '"dryRunn": {', "parameter 'dryRunn' is not declared"),
    ("infra/main.parameters.json", "${ACI_RUNNERS_HOSTING_PLAN=FlexConsumption}", "${ACI_RUNNERS_HOSTING_PLAN=Consumption}", "not in @allowed"),
    ("infra/main.parameters.json", "${MAX_RUNNERS=20}", "${MAX_RUNNERS}", "int placeholder needs a default"),
    ("infra/main.parameters.json", '"environmentName": {\n      "value": "${AZURE_ENV_NAME}"\n    },\n', "", "required parameter 'environmentName'"),
    ("azure.yaml", "    host: function\n", "    host: function\n    hots: function\n", "Additional properties are not allowed"),
    ("azure.yaml", "  app:\n", "  api:\n", "service 'app'"),
]


def run(tree: pathlib.Path) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, str(tree / "infra" / "check" / "validate.py")],
        capture_output=True, text=True, timeout=120,
    )
    return proc.returncode, proc.stdout + proc.stderr


def copy_tree(dst: pathlib.Path) -> None:
    shutil.copytree(ROOT / "infra", dst / "infra", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("azure.yaml", "local.settings.sample.json", "host.json"):
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, dst / name)
    for folder in ("functions", "scripts"):
        if (ROOT / folder).is_dir():
            shutil.copytree(ROOT / folder, dst / folder)


def main() -> int:
    failures = 0
    with tempfile.TemporaryDirectory(prefix="aci-runners-infra-selftest-") as tmp:
        base = pathlib.Path(tmp) / "clean"
        copy_tree(base)
        code, out = run(base)
        if code != 0:
            print("selftest: the unmodified copy does not pass:\n" + out)
            return 1
        for i, (rel, old, new, expect) in enumerate(MUTATIONS):
            tree = pathlib.Path(tmp) / f"m{i}"
            copy_tree(tree)
            path = tree / rel
            text = path.read_text(encoding="utf-8")
            if old not in text:
                print(f"selftest: mutation {i} ({rel}): text to replace not found: {old[:60]!r}")
                failures += 1
                continue
            path.write_text(text.replace(old, new, 1), encoding="utf-8")
            code, out = run(tree)
            fails = [line for line in out.splitlines() if line.startswith("FAIL")]
            if code == 0 or not any(expect in line for line in fails):
                print(f"selftest: mutation {i} ({rel} -> expect {expect!r}) was not caught:\n" + "\n".join(fails or out.splitlines()[-5:]))
                failures += 1
    caught = len(MUTATIONS) - failures
    print(f"validator selftest: {caught}/{len(MUTATIONS)} seeded mistakes caught")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
