#!/usr/bin/env python3
"""Offline checks for infra/*.bicep, infra/main.parameters.json and azure.yaml.

No Bicep compiler can be installed from the package registries this project reaches, so
this script stands in for the parts of `bicep build` that can be checked without one,
and for the project's own contract (DESIGN.md settings, roles, names):

  * syntax: every .bicep file parses with the tree-sitter Bicep grammar (no ERROR or
    MISSING node);
  * symbols: every identifier used in an expression is declared (param, var, resource,
    module, loop variable, lambda parameter) or is a known Bicep function/namespace;
    every called function is a known Bicep function; `mod.outputs.x` names an output the
    module declares; module `params` match the module's parameters (none unknown, every
    required one given); module paths exist;
  * resource types: each `type@apiVersion` is one this project has checked against the
    Azure docs (a typo in a type or a version fails here instead of at deploy time);
  * the contract: every setting in DESIGN.md's Settings table is an app setting;
    FUNCTIONS_WORKER_RUNTIME is `custom` (Elastic Premium) and the Flex runtime is
    `custom`; AzureWebJobsStorage is identity-based; the Key Vault is in RBAC mode and
    the template creates no secret; the built-in role ids are the right ones; the custom
    roles grant exactly the actions the handler needs; the VNet subnet is delegated to
    ACI; the outputs exist; the queue name matches functions/*/function.json;
  * main.parameters.json: valid JSON in the ARM parameters shape, only known
    parameters, every required parameter given, literal values of the right type and
    within @allowed, azd `${VAR}` / `${VAR=default}` placeholders well formed;
  * azure.yaml: parses, validates against infra/check/azure-yaml.schema.json (the subset
    of the azd schema this project uses), and its service, dist and hooks agree with the
    template and scripts/package.sh.

Exit status 0 when everything holds; 1 with one line per problem otherwise.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import sys

import jsonschema
import tree_sitter_bicep
import yaml
from tree_sitter import Language, Node, Parser

ROOT = pathlib.Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
CHECK = INFRA / "check"

PARSER = Parser(Language(tree_sitter_bicep.language()))

errors: list[str] = []
warnings: list[str] = []
passed: list[str] = []


def fail(msg: str) -> None:
    errors.append(msg)


def warn(msg: str) -> None:
    warnings.append(msg)


def ok(msg: str) -> None:
    passed.append(msg)


# ---------------------------------------------------------------------------------------
# Facts checked against the Azure documentation (see docs/deploy.md, "What was verified")
# ---------------------------------------------------------------------------------------

KNOWN_API_VERSIONS = {
    "Microsoft.ManagedIdentity/userAssignedIdentities": {"2023-01-31"},
    "Microsoft.Storage/storageAccounts": {"2023-05-01"},
    "Microsoft.Storage/storageAccounts/blobServices": {"2023-05-01"},
    "Microsoft.Storage/storageAccounts/blobServices/containers": {"2023-05-01"},
    "Microsoft.Storage/storageAccounts/queueServices": {"2023-05-01"},
    "Microsoft.Storage/storageAccounts/queueServices/queues": {"2023-05-01"},
    "Microsoft.KeyVault/vaults": {"2023-07-01"},
    "Microsoft.KeyVault/vaults/keys": {"2023-07-01"},
    "Microsoft.Authorization/roleAssignments": {"2022-04-01"},
    "Microsoft.Authorization/roleDefinitions": {"2022-04-01"},
    "Microsoft.OperationalInsights/workspaces": {"2023-09-01"},
    "Microsoft.Insights/components": {"2020-02-02"},
    "Microsoft.Insights/workbooks": {"2023-06-01"},
    "Microsoft.Insights/scheduledQueryRules": {"2021-08-01"},
    "Microsoft.Web/serverfarms": {"2024-04-01"},
    "Microsoft.Web/sites": {"2024-04-01"},
    "Microsoft.Network/virtualNetworks": {"2023-11-01"},
    "Microsoft.Network/virtualNetworks/subnets": {"2023-11-01"},
    "Microsoft.Network/natGateways": {"2023-11-01"},
    "Microsoft.Network/publicIPAddresses": {"2023-11-01"},
    "Microsoft.Network/networkSecurityGroups": {"2023-11-01"},
}

BUILTIN_ROLES = {
    "keyVaultSecretsUser": "4633458b-17de-408a-b874-0445c86b69e6",
    "keyVaultSecretsOfficer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
    "storageBlobDataOwner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "storageQueueDataContributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "storageTableDataContributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "monitoringMetricsPublisher": "3913510d-42f4-4e42-8a64-420c390055eb",
}

CONTAINER_GROUP_ACTIONS = {
    "Microsoft.ContainerInstance/containerGroups/read",
    "Microsoft.ContainerInstance/containerGroups/write",
    "Microsoft.ContainerInstance/containerGroups/delete",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
}
SUBNET_JOIN_ACTIONS = {"Microsoft.Network/virtualNetworks/subnets/join/action"}
# GitHub App mode: the identity signs with the App's key and does nothing else with keys.
APP_KEY_DATA_ACTIONS = {"Microsoft.KeyVault/vaults/keys/sign/action"}

# DESIGN.md "Settings" at the time of writing; DESIGN.md itself is read too when found.
DESIGN_SETTINGS = [
    "KEY_VAULT_URL", "GITHUB_PAT_SECRET_NAME", "GITHUB_WEBHOOK_SECRET_NAME",
    "AZURE_SUBSCRIPTION_ID", "RUNNER_RESOURCE_GROUP", "RUNNER_LOCATION", "AZURE_CLIENT_ID",
    "RUNNER_LABELS", "RUNNER_SCOPE", "RUNNER_GROUP_ID", "RUNNER_IMAGE", "RUNNER_CPU",
    "RUNNER_MEMORY_GB", "RUNNER_SUBNET_ID", "RUNNER_NAME_PREFIX", "MAX_RUNNERS",
    "RUNNER_IDLE_TIMEOUT_MINUTES", "RUNNER_MAX_LIFETIME_MINUTES", "SWEEP_SCHEDULE",
    "ALLOWED_REPOSITORIES", "ALLOWED_OWNERS", "OIDC_AUDIENCE", "OIDC_ISSUER",
    "GITHUB_API_URL", "AZURE_RESOURCE_MANAGER_URL", "ACI_API_VERSION", "DRY_RUN",
]
# Settings the handler reads that the platform or the developer's machine provides.
PLATFORM_OR_LOCAL_SETTINGS = {
    "AzureWebJobsStorage", "FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION",
    "SSL_CERT_FILE", "FUNCTIONS_CUSTOMHANDLER_PORT", "AzureWebJobsFeatureFlags",
    "APPLICATIONINSIGHTS_CONNECTION_STRING", "RUST_LOG", "RUST_BACKTRACE",
}
# Tuning knobs in local.settings.sample.json that the template leaves to the handler's
# own defaults (set them with `az functionapp config appsettings set` when needed).
HANDLER_DEFAULTED_SETTINGS = {
    "HTTP_TIMEOUT_SECONDS", "RETRY_MAX_ATTEMPTS", "RETRY_BASE_DELAY_MS", "RETRY_MAX_DELAY_MS",
    "SECRET_CACHE_SECONDS",
}

REQUIRED_OUTPUTS = {
    "FUNCTION_APP_NAME", "WEBHOOK_URL", "KEY_VAULT_URL", "IDENTITY_CLIENT_ID",
    "RUNNER_RESOURCE_GROUP", "RUNNER_SUBNET_ID",
}

QUEUE_NAME = "runner-requests"
QUEUE_CONNECTION = "AzureWebJobsStorage"
FUNCTION_FOLDERS = {"github-webhook", "runners", "provision", "sweep"}

BICEP_FUNCTIONS = {
    # any/array/object/string/number
    "any", "array", "base64", "base64ToJson", "base64ToString", "bool", "coalesce", "concat",
    "contains", "dataUri", "dataUriToString", "dateTimeAdd", "dateTimeFromEpoch",
    "dateTimeToEpoch", "empty", "endsWith", "filter", "first", "flatten", "format", "guid",
    "indexOf", "int", "intersection", "items", "join", "json", "last", "lastIndexOf",
    "length", "map", "mapValues", "max", "min", "newGuid", "objectKeys", "padLeft", "range",
    "reduce", "replace", "shallowMerge", "skip", "sort", "split", "startsWith", "string",
    "substring", "take", "toLower", "toObject", "toUpper", "trim", "tryGet", "union",
    "uniqueString", "uri", "uriComponent", "uriComponentToString", "utcNow", "groupBy",
    # deployment / scope / resource
    "deployer", "deployment", "environment", "extensionResourceId", "getSecret",
    "loadFileAsBase64", "loadJsonContent", "loadTextContent", "loadYamlContent",
    "managementGroup", "managementGroupResourceId", "pickZones", "providers", "reference",
    "resourceGroup", "resourceId", "subscription", "subscriptionResourceId", "tenant",
    "tenantResourceId", "listKeys", "listSecrets",
    # decorators
    "description", "allowed", "minLength", "maxLength", "minValue", "maxValue", "secure",
    "metadata", "batchSize", "export", "sealed", "discriminator", "onlyIfNotExists",
}
NAMESPACES = {"az", "sys"}


# ---------------------------------------------------------------------------------------
# Bicep syntax tree helpers (tree-sitter-bicep)
# ---------------------------------------------------------------------------------------

DECL_TYPES = {
    "parameter_declaration": "param",
    "variable_declaration": "var",
    "resource_declaration": "resource",
    "module_declaration": "module",
    "output_declaration": "output",
}


class Bicep:
    def __init__(self, path: pathlib.Path):
        self.path = path
        self.rel = path.relative_to(ROOT).as_posix()
        self.src = path.read_bytes()
        self.root = PARSER.parse(self.src).root_node
        self.decls: dict[str, dict[str, Node]] = {k: {} for k in DECL_TYPES.values()}
        for child in self.root.named_children:
            kind = DECL_TYPES.get(child.type)
            if kind:
                name = self.text(first_named(child, "identifier"))
                self.decls[kind][name] = child

    def text(self, node: Node | None) -> str:
        if node is None:
            return ""
        return self.src[node.start_byte:node.end_byte].decode()

    def where(self, node: Node) -> str:
        return f"{self.rel}:{node.start_point[0] + 1}"

    def target_scope(self) -> str:
        for child in self.root.named_children:
            if child.type == "target_scope_assignment":
                return string_value(self, child.named_children[0]) or ""
        return "resourceGroup"

    def param_has_default(self, node: Node) -> bool:
        # identifier, type, [default expression]
        return len(node.named_children) >= 3

    def param_type(self, node: Node) -> str:
        return self.text(first_named(node, "type"))

    def param_default(self, node: Node) -> Node | None:
        return node.named_children[2] if len(node.named_children) >= 3 else None

    def decorators_of(self, decl: Node) -> dict[str, Node]:
        out: dict[str, Node] = {}
        prev = decl.prev_named_sibling
        if prev is not None and prev.type == "decorators":
            for dec in prev.named_children:
                call = first_named(dec, "call_expression")
                if call is not None:
                    out[self.text(call.named_children[0])] = call
        return out

    def allowed_values(self, decl: Node) -> list | None:
        call = self.decorators_of(decl).get("allowed")
        if call is None:
            return None
        args = first_named(call, "arguments")
        arr = first_named(args, "array")
        return [literal(self, item) for item in arr.named_children] if arr else None

    def body(self, decl: Node) -> Node | None:
        """The object of a resource/module (through `if (...)` and `[for ...]`)."""
        for child in decl.named_children:
            if child.type == "object":
                return child
            if child.type in ("if_statement", "for_statement"):
                obj = first_named(child, "object")
                if obj is not None:
                    return obj
        return None

    def type_string(self, decl: Node) -> str:
        return string_value(self, first_named(decl, "string")) or ""


def first_named(node: Node | None, type_: str) -> Node | None:
    if node is None:
        return None
    for child in node.named_children:
        if child.type == type_:
            return child
    return None


def walk(node: Node):
    yield node
    for child in node.children:
        yield from walk(child)


def string_value(bf: Bicep, node: Node | None) -> str | None:
    """The value of a plain string literal (None when it has interpolations)."""
    if node is None or node.type != "string":
        return None
    parts = []
    for child in node.named_children:
        if child.type == "interpolation":
            return None
        parts.append(bf.text(child))
    return "".join(parts)


def literal(bf: Bicep, node: Node | None):
    if node is None:
        return None
    if node.type == "string":
        return string_value(bf, node)
    if node.type == "number":
        return int(bf.text(node))
    if node.type == "boolean":
        return bf.text(node) == "true"
    if node.type == "null":
        return None
    if node.type == "array":
        return [literal(bf, c) for c in node.named_children]
    if node.type == "object":
        return {k: literal(bf, v) for k, v in props(bf, node).items()}
    return Ellipsis  # an expression


def props(bf: Bicep, obj: Node | None) -> dict[str, Node]:
    """object_property key -> value node (keys may be identifiers or strings)."""
    out: dict[str, Node] = {}
    if obj is None or obj.type != "object":
        return out
    for prop in obj.named_children:
        if prop.type != "object_property" or len(prop.named_children) < 2:
            continue
        key_node, value = prop.named_children[0], prop.named_children[-1]
        key = string_value(bf, key_node) if key_node.type == "string" else bf.text(key_node)
        out[key or bf.text(key_node)] = value
    return out


def object_keys_deep(bf: Bicep, node: Node) -> set[str]:
    """All object keys anywhere inside an expression (union(), ternaries, ...)."""
    keys: set[str] = set()
    for n in walk(node):
        if n.type == "object":
            keys.update(props(bf, n).keys())
    return keys


def setting_pairs(bf: Bicep, node: Node, seen: set[str] | None = None) -> dict[str, Node]:
    """{ name: 'X', value: v } objects anywhere in an expression -> {X: v}, following the
    variables it names."""
    seen = set() if seen is None else seen
    out: dict[str, Node] = {}
    for n in walk(node):
        if n.type == "identifier":
            name = bf.text(n)
            decl = bf.decls["var"].get(name)
            if decl is not None and name not in seen:
                seen.add(name)
                out.update(setting_pairs(bf, decl.named_children[-1], seen))
        if n.type == "object":
            p = props(bf, n)
            name = string_value(bf, p.get("name")) if "name" in p else None
            if name is not None and "value" in p:
                out[name] = p["value"]
    return out


def strings_deep(bf: Bicep, node: Node) -> list[str]:
    return [v for n in walk(node) if n.type == "string" and (v := string_value(bf, n)) is not None]


# ---------------------------------------------------------------------------------------
# Checks on every .bicep file
# ---------------------------------------------------------------------------------------


def check_syntax(bf: Bicep) -> bool:
    bad = [n for n in walk(bf.root) if n.type == "ERROR" or n.is_missing]
    for n in bad[:5]:
        fail(f"{bf.where(n)}: syntax error near {bf.text(n)[:60]!r}")
    if not bad:
        ok(f"{bf.rel}: parses")
    return not bad


def declared_symbols(bf: Bicep) -> set[str]:
    names: set[str] = set()
    for kind in ("param", "var", "resource", "module"):
        names.update(bf.decls[kind])
    return names


def check_symbols(bf: Bicep, modules: dict[str, Bicep]) -> None:
    top = declared_symbols(bf)
    count = 0

    def visit(node: Node, scope: set[str]) -> None:
        nonlocal count
        t = node.type
        if t in ("for_statement",):
            params = first_named(node, "for_loop_parameters")
            local = set(scope)
            if params is not None:
                local.update(bf.text(c) for c in params.named_children)
                rest = node.named_children[1:]
            else:
                loop_var = node.named_children[0]
                local.add(bf.text(loop_var))
                rest = node.named_children[1:]
            for child in rest:
                visit(child, local)
            return
        if t == "lambda_expression":
            kids = node.named_children
            local = set(scope)
            for p in kids[:-1]:
                local.update(bf.text(i) for i in walk(p) if i.type == "identifier")
            visit(kids[-1], local)
            return
        if t == "object_property":
            # key is not a reference; value is
            for child in node.named_children[1:]:
                visit(child, scope)
            return
        if t == "call_expression":
            fn = node.named_children[0]
            if fn.type == "identifier":
                name = bf.text(fn)
                if name not in BICEP_FUNCTIONS:
                    fail(f"{bf.where(fn)}: unknown function {name}()")
                count += 1
                for child in node.named_children[1:]:
                    visit(child, scope)
                return
        if t == "member_expression":
            base, member = node.named_children[0], node.named_children[-1]
            # mod.outputs.x: x must be an output of the module
            if base.type == "member_expression" and bf.text(base.named_children[-1]) == "outputs":
                mod_name = bf.text(base.named_children[0])
                mod = modules.get(mod_name)
                if mod is not None and bf.text(member) not in mod.decls["output"]:
                    fail(f"{bf.where(member)}: module {mod_name} has no output {bf.text(member)!r}")
            if base.type == "identifier" and bf.text(base) in NAMESPACES:
                return
            visit(base, scope)
            return
        if t == "array":
            # tree-sitter-bicep 1.1.0 splits `fn().x` on its own line inside an array into
            # the identifier `fn` and a member expression on `()`: read them as a call.
            kids = node.named_children
            for i, child in enumerate(kids):
                nxt = kids[i + 1] if i + 1 < len(kids) else None
                if child.type == "identifier" and nxt is not None and nxt.start_byte == child.end_byte:
                    if bf.text(child) not in BICEP_FUNCTIONS:
                        fail(f"{bf.where(child)}: unknown function {bf.text(child)}()")
                    count += 1
                    continue
                visit(child, scope)
            return
        if t == "identifier":
            name = bf.text(node)
            if name not in scope and name not in NAMESPACES:
                fail(f"{bf.where(node)}: undefined symbol {name!r}")
            count += 1
            return
        for child in node.named_children:
            visit(child, scope)

    for decl in bf.root.named_children:
        if decl.type in DECL_TYPES:
            for child in decl.named_children[1:]:
                visit(child, top)
        elif decl.type == "decorators":
            for dec in decl.named_children:
                visit(dec, top)
        elif decl.type in ("metadata_declaration",):
            for child in decl.named_children[1:]:
                visit(child, top)
    ok(f"{bf.rel}: {count} references resolve")


def check_resource_types(bf: Bicep) -> None:
    for name, decl in bf.decls["resource"].items():
        ts = bf.type_string(decl)
        if "@" not in ts:
            fail(f"{bf.where(decl)}: resource {name} has no api version ({ts!r})")
            continue
        rtype, version = ts.split("@", 1)
        known = KNOWN_API_VERSIONS.get(rtype)
        if known is None:
            fail(f"{bf.where(decl)}: resource type {rtype} is not in the checked list (infra/check/validate.py KNOWN_API_VERSIONS)")
        elif version not in known:
            fail(f"{bf.where(decl)}: {rtype}@{version}: api version not in the checked list {sorted(known)}")
        body = bf.body(decl)
        if body is not None and "name" not in props(bf, body):
            fail(f"{bf.where(decl)}: resource {name} has no name")


RUNTIME_MARKERS = re.compile(r"\.(properties|outputs)\b|\blist\w*\(|\breference\(")


def check_deploy_time_values(bf: Bicep) -> None:
    """What Bicep needs at the start of a deployment (BCP120/BCP177/BCP178): resource and
    module names and scopes, `if` conditions and `for` arrays may not depend on another
    resource's runtime state (.properties, module .outputs, list*(), reference())."""
    variables = bf.decls["var"]

    def expand(text: str, seen: set[str]) -> str:
        out = text
        for name in re.findall(r"\b[A-Za-z_]\w*\b", text):
            if name in variables and name not in seen:
                seen.add(name)
                out += " " + expand(bf.text(variables[name].named_children[-1]), seen)
        return out

    def check(node: Node | None, what: str) -> None:
        if node is not None and RUNTIME_MARKERS.search(expand(bf.text(node), set())):
            fail(f"{bf.where(node)}: {what} must be known at the start of the deployment: {bf.text(node)[:80]!r}")

    for n in walk(bf.root):
        if n.type == "for_statement":
            # [for x in ARRAY: body] / [for (x, i) in ARRAY: body]
            kids = n.named_children
            check(kids[1] if len(kids) > 1 else None, "a for-expression's array")
        elif n.type == "if_statement":
            check(first_named(n, "parenthesized_expression"), "an if condition")
    for kind in ("resource", "module"):
        for name, decl in bf.decls[kind].items():
            body = props(bf, bf.body(decl))
            check(body.get("name"), f"the name of {name}")
            check(body.get("scope") if kind == "module" else None, f"the scope of {name}")


def check_modules(bf: Bicep, modules: dict[str, Bicep]) -> None:
    for name, decl in bf.decls["module"].items():
        mod = modules.get(name)
        if mod is None:
            continue
        body = bf.body(decl)
        given = props(bf, props(bf, body).get("params"))
        declared = mod.decls["param"]
        for p in given:
            if p not in declared:
                fail(f"{bf.where(decl)}: module {name} ({mod.rel}) has no parameter {p!r}")
        for p, pdecl in declared.items():
            if not mod.param_has_default(pdecl) and p not in given:
                fail(f"{bf.where(decl)}: module {name} needs parameter {p!r}")
        if "name" not in props(bf, body):
            fail(f"{bf.where(decl)}: module {name} has no deployment name")
    if bf.decls["module"]:
        ok(f"{bf.rel}: {len(bf.decls['module'])} module calls match their modules' parameters")


def load_modules(bf: Bicep) -> dict[str, Bicep]:
    out: dict[str, Bicep] = {}
    for name, decl in bf.decls["module"].items():
        rel = bf.type_string(decl)
        path = (bf.path.parent / rel).resolve()
        if not path.is_file():
            fail(f"{bf.where(decl)}: module {name}: file {rel} not found")
            continue
        out[name] = Bicep(path)
    return out


# ---------------------------------------------------------------------------------------
# The project's contract
# ---------------------------------------------------------------------------------------


def design_settings() -> list[str]:
    """Setting names from DESIGN.md's Settings table when the file is reachable."""
    names = list(DESIGN_SETTINGS)
    candidates = [
        os.environ.get("ACI_RUNNERS_DESIGN_MD", ""),
        str(ROOT.parent / "shared" / "DESIGN.md"),
        "/work/shared/DESIGN.md",
    ]
    for cand in candidates:
        if cand and pathlib.Path(cand).is_file():
            text = pathlib.Path(cand).read_text(encoding="utf-8")
            m = re.search(r"^## Settings\s*$(.*?)^## ", text, re.S | re.M)
            if not m:
                warn(f"{cand}: no '## Settings' section found; using the built-in list")
                return names
            for row in m.group(1).splitlines():
                if row.startswith("| `"):
                    first_cell = row.split("|")[1]
                    for found in re.findall(r"`([A-Z][A-Z0-9_]+)`", first_cell):
                        if found not in names:
                            names.append(found)
            ok(f"settings list cross-checked with {cand}")
            return names
    warn("DESIGN.md not found; using the built-in settings list")
    return names


def check_main(bf: Bicep, modules: dict[str, Bicep]) -> dict:
    facts: dict = {}
    if bf.target_scope() != "resourceGroup":
        fail(f"{bf.rel}: targetScope must be resourceGroup (az deployment group create / azd resource-group scope)")

    variables = bf.decls["var"]

    # --- app settings -------------------------------------------------------------------
    # Each group is an array of { name: 'X', value: ... }; appSettings concat()s them.
    groups = ("storageSettings", "monitoringSettings", "premiumSettings", "handlerSettings",
              "optionalHandlerSettings")
    pairs: dict[str, dict[str, Node]] = {}
    for var in groups:
        decl = variables.get(var)
        if decl is None:
            fail(f"{bf.rel}: variable {var} is missing")
            pairs[var] = {}
            continue
        pairs[var] = setting_pairs(bf, decl.named_children[-1])
    settings_keys = set().union(*(set(p) for p in pairs.values()))
    app_settings = variables.get("appSettings")
    if app_settings is None or not all(g in bf.text(app_settings) for g in groups):
        fail(f"{bf.rel}: appSettings must concat() every settings group {groups}")
    site_cfg = bf.text(variables.get("flexSiteConfig")) + bf.text(variables.get("premiumSiteConfig"))
    if site_cfg.count("appSettings: appSettings") != 2:
        fail(f"{bf.rel}: both site configs must carry appSettings: appSettings")
    facts["settings"] = settings_keys

    missing = [s for s in design_settings() if s not in settings_keys]
    for s in missing:
        fail(f"{bf.rel}: DESIGN.md setting {s} is not an app setting")
    if not missing:
        ok(f"{bf.rel}: every DESIGN.md setting is an app setting ({len(DESIGN_SETTINGS)}+)")

    storage = pairs.get("storageSettings", {})
    want_storage = {
        "AzureWebJobsStorage__credential", "AzureWebJobsStorage__clientId",
        "AzureWebJobsStorage__blobServiceUri", "AzureWebJobsStorage__queueServiceUri",
        "AzureWebJobsStorage__tableServiceUri",
    }
    if not want_storage <= set(storage):
        fail(f"{bf.rel}: identity-based AzureWebJobsStorage needs {sorted(want_storage - set(storage))}")
    if "AzureWebJobsStorage" in settings_keys:
        fail(f"{bf.rel}: AzureWebJobsStorage must not be a connection string (identity-based storage)")
    if literal(bf, storage.get("AzureWebJobsStorage__credential")) != "managedidentity":
        fail(f"{bf.rel}: AzureWebJobsStorage__credential must be 'managedidentity'")
    if "identity.properties.clientId" not in bf.text(storage.get("AzureWebJobsStorage__clientId")):
        fail(f"{bf.rel}: AzureWebJobsStorage__clientId must be the user-assigned identity's clientId")

    premium = variables.get("premiumSettings")
    if premium is not None:
        if not bf.text(premium).split("=", 1)[1].strip().startswith("isFlex ? [] :"):
            fail(f"{bf.rel}: premiumSettings must be empty on Flex Consumption (it rejects FUNCTIONS_WORKER_RUNTIME)")
        pvals = {k: literal(bf, v) for k, v in pairs.get("premiumSettings", {}).items()}
        if pvals.get("FUNCTIONS_WORKER_RUNTIME") != "custom":
            fail(f"{bf.rel}: FUNCTIONS_WORKER_RUNTIME must be 'custom' on Elastic Premium")
        if pvals.get("FUNCTIONS_EXTENSION_VERSION") != "~4":
            fail(f"{bf.rel}: FUNCTIONS_EXTENSION_VERSION must be '~4' on Elastic Premium")
    for var in groups:
        if var != "premiumSettings" and "FUNCTIONS_WORKER_RUNTIME" in pairs.get(var, {}):
            fail(f"{bf.rel}: FUNCTIONS_WORKER_RUNTIME outside premiumSettings would break Flex Consumption")

    handler = pairs.get("handlerSettings", {})
    if "identity.properties.clientId" not in bf.text(handler.get("AZURE_CLIENT_ID")):
        fail(f"{bf.rel}: AZURE_CLIENT_ID must be the user-assigned identity's clientId")
    if "vault.properties.vaultUri" not in bf.text(handler.get("KEY_VAULT_URL")):
        fail(f"{bf.rel}: KEY_VAULT_URL must be the vault's URI")
    if "runnerSubnetId" not in bf.text(pairs.get("optionalHandlerSettings", {}).get("RUNNER_SUBNET_ID")):
        fail(f"{bf.rel}: RUNNER_SUBNET_ID must come from the runner subnet")

    flex_cfg = variables.get("flexFunctionAppConfig")
    runtime = {}
    if flex_cfg is not None:
        for n in walk(flex_cfg):
            if n.type == "object_property" and bf.text(n.named_children[0]) == "runtime":
                runtime = literal(bf, n.named_children[-1]) or {}
    if runtime.get("name") != "custom":
        fail(f"{bf.rel}: Flex functionAppConfig.runtime.name must be 'custom' (got {runtime!r})")

    # --- resources ------------------------------------------------------------------------
    resources = bf.decls["resource"]
    types = {name: bf.type_string(d).split("@")[0] for name, d in resources.items()}
    all_types = set(types.values()) | {t.split("@")[0] for m in modules.values() for t in (m.type_string(d) for d in m.decls["resource"].values())}
    if any(t.startswith("Microsoft.KeyVault/vaults/secrets") for t in all_types):
        fail("infra: the template must not create Key Vault secrets")

    vault = next((d for n, d in resources.items() if types[n] == "Microsoft.KeyVault/vaults"), None)
    if vault is None:
        fail(f"{bf.rel}: no Key Vault")
    else:
        vprops = props(bf, props(bf, bf.body(vault)).get("properties"))
        if literal(bf, vprops.get("enableRbacAuthorization")) is not True:
            fail(f"{bf.where(vault)}: Key Vault must set enableRbacAuthorization: true")
        if "accessPolicies" in vprops:
            fail(f"{bf.where(vault)}: RBAC vault must not carry access policies")

    site = next((d for n, d in resources.items() if types[n] == "Microsoft.Web/sites"), None)
    if site is None:
        fail(f"{bf.rel}: no Function App")
    else:
        sbody = props(bf, bf.body(site))
        if literal(bf, sbody.get("kind")) != "functionapp,linux":
            fail(f"{bf.where(site)}: the Function App must be kind 'functionapp,linux'")
        ident = bf.text(sbody.get("identity"))
        if "UserAssigned" not in ident or "identity.id" not in ident:
            fail(f"{bf.where(site)}: the Function App must carry the user-assigned identity")
        tags_txt = bf.text(sbody.get("tags"))
        if "azd-service-name" not in tags_txt:
            fail(f"{bf.where(site)}: the Function App needs the azd-service-name tag")
        if "httpsOnly: true" not in bf.text(sbody.get("properties")):
            fail(f"{bf.where(site)}: httpsOnly must be true")
    facts["azd_service_name"] = literal(bf, variables["azdServiceName"].named_children[-1]) if "azdServiceName" in variables else None

    plan = next((d for n, d in resources.items() if types[n] == "Microsoft.Web/serverfarms"), None)
    if plan is not None:
        ptxt = bf.text(plan)
        for needle in ("'FC1'", "'FlexConsumption'", "'ElasticPremium'", "reserved: true"):
            if needle not in ptxt:
                fail(f"{bf.where(plan)}: plan should mention {needle}")

    # role ids
    role_var = variables.get("roleIds")
    roles = literal(bf, role_var.named_children[-1]) if role_var is not None else {}
    for key, guid in BUILTIN_ROLES.items():
        if roles.get(key) != guid:
            fail(f"{bf.rel}: roleIds.{key} must be {guid} (got {roles.get(key)!r})")
    if roles and all(roles.get(k) == v for k, v in BUILTIN_ROLES.items()):
        ok(f"{bf.rel}: built-in role ids match")

    vault_user = any(
        types[n] == "Microsoft.Authorization/roleAssignments"
        and "roleIds.keyVaultSecretsUser" in bf.text(d)
        and "identity.properties.principalId" in bf.text(d)
        and "scope: vault" in bf.text(d)
        for n, d in resources.items()
    )
    if not vault_user:
        fail(f"{bf.rel}: the identity needs Key Vault Secrets User on the vault")

    queue_names = {literal(bf, props(bf, bf.body(d)).get("name")) for n, d in resources.items()
                   if types[n] == "Microsoft.Storage/storageAccounts/queueServices/queues"}
    qvar = variables.get("requestQueueName")
    if qvar is None or literal(bf, qvar.named_children[-1]) != QUEUE_NAME:
        fail(f"{bf.rel}: requestQueueName must be {QUEUE_NAME!r}")

    # --- outputs --------------------------------------------------------------------------
    missing_out = REQUIRED_OUTPUTS - set(bf.decls["output"])
    if missing_out:
        fail(f"{bf.rel}: missing outputs {sorted(missing_out)}")
    webhook = bf.decls["output"].get("WEBHOOK_URL")
    if webhook is not None and "/api/github/webhook" not in bf.text(webhook):
        fail(f"{bf.rel}: WEBHOOK_URL must end in /api/github/webhook")
    facts["params"] = bf.decls["param"]
    return facts


def check_runner_roles(modules: dict[str, Bicep]) -> None:
    by_file = {m.path.name: m for m in modules.values()}
    for fname, want in (("runner-access.bicep", CONTAINER_GROUP_ACTIONS), ("subnet-join.bicep", SUBNET_JOIN_ACTIONS)):
        mod = by_file.get(fname)
        if mod is None:
            fail(f"infra/modules/{fname}: not used by main.bicep")
            continue
        found: set[str] = set()
        for name, decl in mod.decls["resource"].items():
            if mod.type_string(decl).startswith("Microsoft.Authorization/roleDefinitions@"):
                body = props(mod, props(mod, mod.body(decl)).get("properties"))
                for perm in (literal(mod, body.get("permissions")) or []):
                    actions = perm.get("actions")
                    if isinstance(actions, list):
                        found |= set(actions)
                    if perm.get("dataActions"):
                        fail(f"{mod.rel}: custom role must not grant data actions")
                scopes = mod.text(body.get("assignableScopes"))
                if "resourceGroup().id" not in scopes:
                    fail(f"{mod.rel}: custom role must be assignable only in its resource group")
        if "actions" in mod.text(mod.root) and not found:
            # actions may be a variable
            for vname, vdecl in mod.decls["var"].items():
                val = literal(mod, vdecl.named_children[-1])
                if isinstance(val, list) and all(isinstance(x, str) for x in val):
                    found |= set(val)
        if found != want:
            fail(f"{mod.rel}: custom role actions {sorted(found)} != {sorted(want)}")
        else:
            ok(f"{mod.rel}: custom role grants exactly {len(want)} action(s)")

    sign = by_file.get("app-key-sign.bicep")
    if sign is None:
        fail("infra/modules/app-key-sign.bicep: not used by main.bicep")
    else:
        found = set()
        for name, decl in sign.decls["resource"].items():
            tstr = sign.type_string(decl)
            if tstr.startswith("Microsoft.Authorization/roleDefinitions@"):
                body = props(sign, props(sign, sign.body(decl)).get("properties"))
                perms = sign.text(body.get("permissions"))
                if "signDataActions" not in perms:
                    fail(f"{sign.rel}: the custom role's dataActions must be signDataActions")
                if "resourceGroup().id" not in sign.text(body.get("assignableScopes")):
                    fail(f"{sign.rel}: custom role must be assignable only in its resource group")
                for perm in (literal(sign, body.get("permissions")) or []):
                    if perm.get("actions"):
                        fail(f"{sign.rel}: the sign role must grant no control-plane actions")
            if tstr.startswith("Microsoft.Authorization/roleAssignments@"):
                if "scope: appKey" not in sign.text(decl):
                    fail(f"{sign.rel}: the sign role must be assigned at the scope of the one key")
        var = sign.decls["var"].get("signDataActions")
        found = set(literal(sign, var.named_children[-1]) or []) if var is not None else set()
        if found != APP_KEY_DATA_ACTIONS:
            fail(f"{sign.rel}: sign role data actions {sorted(found)} != {sorted(APP_KEY_DATA_ACTIONS)}")
        else:
            ok(f"{sign.rel}: the App key role grants only keys/sign, on the one key")

    net = by_file.get("network.bicep")
    if net is None:
        fail("infra/modules/network.bicep: not used by main.bicep")
    else:
        services = [s for s in strings_deep(net, net.root) if s.startswith("Microsoft.ContainerInstance/")]
        if "Microsoft.ContainerInstance/containerGroups" not in services:
            fail(f"{net.rel}: the runner subnet must be delegated to Microsoft.ContainerInstance/containerGroups")
        if "natGateway" not in net.text(net.root):
            fail(f"{net.rel}: the runner subnet needs explicit outbound access (NAT gateway)")
        else:
            ok(f"{net.rel}: subnet delegated to ACI, NAT gateway for egress")


# ---------------------------------------------------------------------------------------
# main.parameters.json
# ---------------------------------------------------------------------------------------

PLACEHOLDER = re.compile(r"^\$\{([A-Z_][A-Z0-9_]*)(=([^}]*))?\}$")


def check_parameters_file(bf: Bicep) -> None:
    path = INFRA / "main.parameters.json"
    rel = path.relative_to(ROOT).as_posix()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        fail(f"{rel}: {e}")
        return
    schema = json.loads((CHECK / "deployment-parameters.schema.json").read_text(encoding="utf-8"))
    for err in jsonschema.Draft202012Validator(schema).iter_errors(data):
        fail(f"{rel}: {'/'.join(map(str, err.absolute_path)) or '(root)'}: {err.message}")
    params = data.get("parameters", {})
    declared = bf.decls["param"]
    for name, entry in params.items():
        decl = declared.get(name)
        if decl is None:
            fail(f"{rel}: parameter {name!r} is not declared in {bf.rel}")
            continue
        value = entry.get("value")
        ptype = bf.param_type(decl)
        allowed = bf.allowed_values(decl)
        candidates = []
        if isinstance(value, str) and "${" in value:
            m = PLACEHOLDER.match(value)
            if not m:
                fail(f"{rel}: {name}: malformed azd placeholder {value!r} (use ${{VAR}} or ${{VAR=default}})")
                continue
            if m.group(2) is not None:
                candidates.append(coerce(m.group(3), ptype))
            elif ptype in ("int", "bool"):
                fail(f"{rel}: {name}: {ptype} placeholder needs a default (${{VAR=...}}): an unset variable becomes ''")
        else:
            candidates.append(value)
            if not type_matches(value, ptype):
                fail(f"{rel}: {name}: {value!r} is not a {ptype}")
        for cand in candidates:
            if cand is not None and allowed is not None and cand not in allowed:
                fail(f"{rel}: {name}: {cand!r} not in @allowed {allowed}")
    for name, decl in declared.items():
        if not bf.param_has_default(decl) and name not in params:
            fail(f"{rel}: required parameter {name!r} has no value")
    # defaults in the template must satisfy their own @allowed lists
    for name, decl in declared.items():
        allowed = bf.allowed_values(decl)
        default = literal(bf, bf.param_default(decl))
        if allowed is not None and default not in (None, Ellipsis) and default not in allowed:
            fail(f"{bf.where(decl)}: default {default!r} of {name} not in @allowed {allowed}")
    ok(f"{rel}: {len(params)} parameters, all declared, required ones present")


def coerce(raw: str, ptype: str):
    if ptype == "int":
        try:
            return int(raw)
        except ValueError:
            fail(f"infra/main.parameters.json: default {raw!r} is not an int")
            return None
    if ptype == "bool":
        if raw.lower() not in ("true", "false"):
            fail(f"infra/main.parameters.json: default {raw!r} is not a bool")
            return None
        return raw.lower() == "true"
    return raw


def type_matches(value, ptype: str) -> bool:
    return {
        "string": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
    }.get(ptype, True)


# ---------------------------------------------------------------------------------------
# azure.yaml
# ---------------------------------------------------------------------------------------


def check_azure_yaml(facts: dict) -> None:
    path = ROOT / "azure.yaml"
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        fail(f"azure.yaml: {e}")
        return
    schema = json.loads((CHECK / "azure-yaml.schema.json").read_text(encoding="utf-8"))
    errs = list(jsonschema.Draft201909Validator(schema).iter_errors(doc))
    for err in errs:
        fail(f"azure.yaml: {'/'.join(map(str, err.absolute_path)) or '(root)'}: {err.message}")
    if errs:
        return
    services = doc["services"]
    name = facts.get("azd_service_name")
    if name not in services:
        fail(f"azure.yaml: service {name!r} (the Function App's azd-service-name tag) is not defined")
        return
    svc = services[name]
    if svc.get("host") != "function":
        fail("azure.yaml: the service must have host: function")
    infra = doc.get("infra", {})
    if infra.get("path", "infra") != "infra" or infra.get("module", "main") != "main":
        fail("azure.yaml: infra must point at infra/main.bicep")
    dist = svc.get("dist", "")
    hooks = json.dumps(svc.get("hooks", {}))
    if "scripts/package.sh" not in hooks:
        fail("azure.yaml: a hook must run scripts/package.sh (it stages dist/)")
    if dist.endswith(".zip") and dist not in hooks:
        fail(f"azure.yaml: dist {dist!r} is a zip that no hook creates")
    pkg = ROOT / "scripts" / "package.sh"
    if pkg.is_file():
        text = pkg.read_text(encoding="utf-8", errors="replace")
        if "dist" not in text:
            fail("scripts/package.sh does not mention dist/: azure.yaml zips dist/")
        ok("azure.yaml: scripts/package.sh present")
    else:
        warn("scripts/package.sh not present yet: azure.yaml's hook calls it")
    ok(f"azure.yaml: valid; service {name!r} host function, dist {dist!r}")


# ---------------------------------------------------------------------------------------
# Cross-checks with the rest of the repository (when those files exist)
# ---------------------------------------------------------------------------------------


def check_functions_folder() -> None:
    fdir = ROOT / "functions"
    if not fdir.is_dir():
        warn("functions/ not present yet: queue and schedule bindings not cross-checked")
        return
    seen = {p.parent.name for p in fdir.glob("*/function.json")}
    if FUNCTION_FOLDERS - seen:
        warn(f"functions/: missing {sorted(FUNCTION_FOLDERS - seen)}")
    for fj in sorted(fdir.glob("*/function.json")):
        rel = fj.relative_to(ROOT).as_posix()
        try:
            data = json.loads(fj.read_text(encoding="utf-8"))
        except ValueError as e:
            fail(f"{rel}: {e}")
            continue
        for b in data.get("bindings", []):
            btype = str(b.get("type", ""))
            if btype.lower().startswith("queue"):
                if b.get("queueName") != QUEUE_NAME:
                    fail(f"{rel}: queue binding uses {b.get('queueName')!r}; infra creates {QUEUE_NAME!r}")
                if b.get("connection", QUEUE_CONNECTION) != QUEUE_CONNECTION:
                    fail(f"{rel}: queue binding connection {b.get('connection')!r}; infra configures {QUEUE_CONNECTION!r}")
            if btype == "timerTrigger" and b.get("schedule") != "%SWEEP_SCHEDULE%":
                warn(f"{rel}: timer schedule {b.get('schedule')!r} is not %SWEEP_SCHEDULE% (the app setting infra sets)")
    ok(f"functions/: {len(seen)} function.json cross-checked")


def check_local_settings(settings: set[str]) -> None:
    sample = ROOT / "local.settings.sample.json"
    if not sample.is_file():
        warn("local.settings.sample.json not present yet: not cross-checked")
        return
    try:
        values = json.loads(sample.read_text(encoding="utf-8")).get("Values", {})
    except ValueError as e:
        fail(f"local.settings.sample.json: {e}")
        return
    extra = sorted(k for k in values if k not in settings and k not in PLATFORM_OR_LOCAL_SETTINGS
                   and k not in HANDLER_DEFAULTED_SETTINGS)
    if extra:
        warn(f"local.settings.sample.json names settings infra/main.bicep does not set: {extra} "
             "(add them to handlerSettings in infra/main.bicep, or to HANDLER_DEFAULTED_SETTINGS in infra/check/validate.py)")
    else:
        ok("local.settings.sample.json: every handler setting is set by infra")


# ---------------------------------------------------------------------------------------


def main() -> int:
    main_path = INFRA / "main.bicep"
    if not main_path.is_file():
        print("infra/main.bicep not found", file=sys.stderr)
        return 1
    all_files = sorted(INFRA.rglob("*.bicep"))
    parsed = {p: Bicep(p) for p in all_files}
    syntax_ok = all(check_syntax(bf) for bf in parsed.values())
    main_bf = parsed[main_path]
    modules = load_modules(main_bf)
    if syntax_ok:
        for bf in parsed.values():
            mods = load_modules(bf) if bf is not main_bf else modules
            check_symbols(bf, mods)
            check_resource_types(bf)
            check_deploy_time_values(bf)
            check_modules(bf, mods)
        facts = check_main(main_bf, modules)
        check_runner_roles(modules)
        check_parameters_file(main_bf)
        check_azure_yaml(facts)
        check_functions_folder()
        check_local_settings(facts.get("settings", set()))
    for line in passed:
        print(f"ok    {line}")
    for line in warnings:
        print(f"warn  {line}")
    for line in errors:
        print(f"FAIL  {line}")
    print(f"infra summary: {len(passed)} ok, {len(errors)} problems, {len(warnings)} warnings")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
