"""The stage contract: what each DVC stage must declare, computed statically from the code.

A stage's code deps are its script plus every file of the package its script imports, transitively
(`import_closure`); its params are the leaf keys of params.yaml its code reads (`params_read`), minus the
`RUNTIME_KNOBS` that cannot change results. `tests/test_stage_contract.py` holds dvc.yaml to both, so
editing an imported module makes `dvc status` name exactly the stages that run it, and a knob edit reruns
nothing. After code edits, `python -m r1interp.contract` prints what each stage should declare and
`python -m r1interp.contract --write` rewrites the code deps and params of dvc.yaml to match (data deps,
outs, metrics, plots and comments are kept).

Nothing is imported or executed: files are parsed with `ast`, the parameter schema is read from the
dataclasses of `r1interp/config.py` the same way. The analysis over-approximates where it cannot see:
an import inside any function counts; a params section used in any way other than reading its fields,
handing it to an analysable function, or aliasing it to a local name counts as all the leaves under it.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import yaml

# Leaves that cannot change any hashed output, so no stage declares them (one place; the test checks it).
RUNTIME_KNOBS: dict[str, str] = {
    "model.device": "where tensors live; CPU results are pinned, a GPU run is not bit-identical anyway (README: force `dvc repro -f`)",
    "motifs.workers": "null samples are seeded by their own index (motifs/nulls.py), so any worker count gives the same tables",
    "motifs.max_seconds_per_graph": "only a stderr warning and the unhashed timings; samples are never cut (motifs/collection.py)",
    "labels.claude.concurrency": "request threads; answers are cached by request key, failures fail the stage",
    "labels.claude.timeout_s": "per-request HTTP timeout; a timed-out request is retried or fails the stage",
    "labels.claude.max_retries": "how long to keep trying; giving up fails the stage, never writes a different table",
    "labels.claude.max_retry_wait_s": "cap on one retry wait",
    "labels.claude.requests_per_minute": "client-side rate limit",
    "labels.claude.tokens_per_minute": "client-side rate limit",
    "labels.claude.batch_poll_s": "how often a Message Batch is polled",
}

# Stages that show the whole params file (so they declare `params.yaml:` with no keys, knobs included).
WHOLE_FILE_STAGES: dict[str, str] = {
    "report": "the overview page shows the whole params file",
}

PARAMS_FILE = "params.yaml"
SCRIPT_DIR = "stages"
_IGNORED_PARTS = ("__pycache__",)
_IGNORED_SUFFIXES = (".pyc", ".pyo")


# ============================================================================ import closure


def _module_file(module: str, repo_root: Path) -> Path | None:
    """`a.b.c` -> a/b/c.py or a/b/c/__init__.py under repo_root (None when neither exists)."""
    base = repo_root.joinpath(*module.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _module_name(path: Path, repo_root: Path) -> str:
    parts = list(path.relative_to(repo_root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(tree: ast.AST):
    """ast.walk without the bodies of `if TYPE_CHECKING:` (never executed)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            stack.append(node.test)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _data_paths(tree: ast.Module, path: Path, repo_root: Path, package: str) -> set[Path]:
    """Package data a module reads, when trivially visible: `resources.files("pkg.sub") / "name" ...` and
    `Path(__file__).parent / "name" ...` (the longest such chain)."""

    def base_of(node: ast.expr) -> Path | None:
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            arg = node.args[0].value
            if name == "files" and isinstance(arg, str) and (arg == package or arg.startswith(package + ".")):
                return repo_root.joinpath(*arg.split("."))
        if isinstance(node, ast.Attribute) and node.attr == "parent":
            inner = node.value
            if isinstance(inner, ast.Call) and isinstance(inner.func, ast.Attribute) and inner.func.attr == "resolve":
                inner = inner.func.value
            if (
                isinstance(inner, ast.Call)
                and getattr(inner.func, "id", getattr(inner.func, "attr", "")) == "Path"
                and inner.args
                and isinstance(inner.args[0], ast.Name)
                and inner.args[0].id == "__file__"
            ):
                return path.parent
        return None

    found: set[Path] = set()
    inner_nodes: set[int] = set()
    for node in _walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            if id(node) in inner_nodes:
                continue
            parts, left = [], node
            while isinstance(left, ast.BinOp) and isinstance(left.op, ast.Div):
                inner_nodes.add(id(left))
                if not (isinstance(left.right, ast.Constant) and isinstance(left.right.value, str)):
                    parts = []
                parts.insert(0, left.right.value if isinstance(left.right, ast.Constant) else None)
                left = left.left
            base = base_of(left)
            if base is None:
                continue
            target = base
            for part in parts:
                if not isinstance(part, str):
                    break
                target = target / part
            if target != base and target.exists() and target.resolve().is_relative_to((repo_root / package).resolve()):
                found.add(target)
    return found


def _imported_modules(tree: ast.Module, path: Path, repo_root: Path, package: str, script_dir: Path | None) -> set[str]:
    """Module names (inside `package`, or top-level modules beside the script) imported anywhere in `tree`."""
    current = _module_name(path, repo_root) if script_dir is None else ""
    is_package = path.name == "__init__.py"
    out: set[str] = set()

    def exists(name: str) -> bool:
        return _module_file(name, repo_root) is not None

    for node in _walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if script_dir is not None:  # a relative import in a script: not a package module
                    continue
                anchor = current.split(".") if is_package else current.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            out.add(base)
            for alias in node.names:
                if alias.name != "*" and exists(f"{base}.{alias.name}"):
                    out.add(f"{base}.{alias.name}")
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            out.add(node.args[0].value)
    keep = set()
    for name in out:
        top = name.split(".")[0]
        if top == package:
            keep.add(name)
        elif script_dir is not None and "." not in name and (script_dir / f"{name}.py").is_file():
            keep.add(f"{SCRIPT_DIR}:{name}")  # a module beside the script (sys.path[0] of `python stages/x.py`)
    return keep


_CACHE: dict[tuple, object] = {}


def _cached(kind: str, script: Path, package_root: Path, compute, *extra):
    """Memoised per script while no file of the package (nor the script's folder) changes."""
    stamp = tuple(
        sorted(
            (str(p), p.stat().st_mtime_ns, p.stat().st_size)
            for folder in (package_root, script.parent)
            for p in folder.rglob("*.py")
            if "__pycache__" not in p.parts
        )
    )
    key = (kind, script, package_root, extra, hash(stamp))
    if key not in _CACHE:
        _CACHE[key] = compute()
    return _CACHE[key]


def import_closure(script: Path, package_root: Path) -> set[str]:
    """Repo-relative paths of the files of `package_root` (e.g. r1interp/) that `script` imports, transitively:
    absolute and relative imports, imports inside functions, every parent package's `__init__.py`, package
    data read through `resources.files(...) / "name"` (a directory stays one entry), and modules beside the
    script that it imports by bare name. The script itself is not included."""
    script, package_root = Path(script).resolve(), Path(package_root).resolve()
    return set(_cached("imports", script, package_root, lambda: _import_closure(script, package_root)))


def _import_closure(script: Path, package_root: Path) -> set[str]:
    repo_root, package = package_root.parent, package_root.name
    files: set[Path] = set()
    data: set[Path] = set()
    todo: list[tuple[Path, Path | None]] = [(script, script.parent)]
    seen: set[Path] = set()
    while todo:
        path, script_dir = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        tree = _parse(path)
        data |= _data_paths(tree, path, repo_root, package)
        for name in _imported_modules(tree, path, repo_root, package, script_dir):
            if name.startswith(f"{SCRIPT_DIR}:"):
                sibling = (script_dir or path.parent) / f"{name.split(':', 1)[1]}.py"
                files.add(sibling)
                todo.append((sibling, sibling.parent))
                continue
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__.py and a/b/__init__.py first
                file = _module_file(".".join(parts[:i]), repo_root)
                if file is not None:
                    files.add(file)
                    todo.append((file, None))
    files.discard(script)
    return {p.relative_to(repo_root).as_posix() for p in files | data}


# ============================================================================ the params schema


@dataclasses.dataclass(frozen=True)
class Schema:
    """The params dataclasses of config.py: class -> field -> section class name (or None for a leaf)."""

    classes: dict[str, dict[str, str | None]]
    root: str = "Params"

    @classmethod
    def from_config(cls, config_py: Path) -> Schema:
        tree = _parse(Path(config_py))
        raw: dict[str, dict[str, ast.expr]] = {}
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and any(
                (isinstance(d, ast.Name) and d.id == "dataclass")
                or (isinstance(d, ast.Call) and getattr(d.func, "id", getattr(d.func, "attr", "")) == "dataclass")
                or (isinstance(d, ast.Attribute) and d.attr == "dataclass")
                for d in node.decorator_list
            ):
                raw[node.name] = {
                    s.target.id: s.annotation
                    for s in node.body
                    if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
                }

        def kind(ann: ast.expr) -> str | None:
            name = (
                ann.value if isinstance(ann, ast.Constant) and isinstance(ann.value, str) else getattr(ann, "id", None)
            )
            return name if name in raw else None  # dict[str, X] / list[X] / scalars are leaves

        return cls({name: {f: kind(a) for f, a in fields.items()} for name, fields in raw.items()})

    def node(self, path: tuple[str, ...]) -> str | None | bool:
        """The section class at `path`, None for a leaf, False when `path` is not in the schema."""
        cls: str | None = self.root
        for part in path:
            if cls is None or part not in self.classes[cls]:
                return False
            cls = self.classes[cls][part]
        return cls

    def leaves(self, path: tuple[str, ...] = ()) -> set[str]:
        cls = self.node(path)
        if cls is False:
            return set()
        if cls is None:
            return {".".join(path)}
        out: set[str] = set()
        for name in self.classes[cls]:
            out |= self.leaves(path + (name,))
        return out


# ============================================================================ params read


class _Module:
    """One parsed file: its functions and what its imported names refer to."""

    def __init__(self, path: Path, repo_root: Path, package: str) -> None:
        self.path, self.tree = path, _parse(path)
        self.name = _module_name(path, repo_root) if path.is_relative_to(repo_root / package) else "__main__"
        self.functions = {n.name: n for n in self.tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        self.imports: dict[str, tuple[str, str | None]] = {}  # local name -> (module, attribute or None)
        is_package = path.name == "__init__.py"
        for node in _walk(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.imports[alias.asname] = (alias.name, None)
                    else:
                        top = alias.name.split(".")[0]
                        self.imports[top] = (top, None)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = self.name.split(".") if is_package else self.name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                    base = ".".join(anchor + ([node.module] if node.module else []))
                for alias in node.names:
                    if alias.name != "*":
                        self.imports[alias.asname or alias.name] = (base, alias.name)


_Path = tuple[str, ...]
_Ref = tuple[str, object]  # ("module", name) | ("function", (_Module, FunctionDef)) | ("partial", None)


class _ParamsAnalysis:
    """Leaves of the params read by functions that receive params objects (see `params_read`)."""

    def __init__(self, schema: Schema, repo_root: Path, package: str, descend: bool = True) -> None:
        self.schema, self.repo_root, self.package, self.descend = schema, repo_root, package, descend
        self.modules: dict[Path, _Module] = {}
        self.memo: dict[tuple, set[_Path]] = {}

    # -- names -------------------------------------------------------------------------------------

    def module(self, path: Path) -> _Module:
        path = path.resolve()
        if path not in self.modules:
            self.modules[path] = _Module(path, self.repo_root, self.package)
        return self.modules[path]

    def package_module(self, name: str) -> _Module | None:
        if name.split(".")[0] != self.package:
            return None
        file = _module_file(name, self.repo_root)
        return self.module(file) if file is not None else None

    def lookup(self, mod: _Module, name: str, depth: int = 0) -> _Ref | None:
        if depth > 8:
            return None
        if name in mod.functions:
            return ("function", (mod, mod.functions[name]))
        if name in mod.imports:
            base, attr = mod.imports[name]
            if attr is None:
                return ("module", base)
            if name == "partial" and base == "functools":
                return ("partial", None)
            if _module_file(f"{base}.{attr}", self.repo_root) is not None:
                return ("module", f"{base}.{attr}")
            target = self.package_module(base)
            if target is None:
                return None
            if not self.descend and target.path != mod.path:
                return None
            return self.lookup(target, attr, depth + 1)
        return None

    def resolve_callee(self, mod: _Module, local_defs: dict, expr: ast.expr) -> _Ref | None:
        if isinstance(expr, ast.Name):
            if expr.id in local_defs:
                return ("function", (mod, local_defs[expr.id]))
            return self.lookup(mod, expr.id)
        if isinstance(expr, ast.Attribute):
            owner = self.resolve_callee(mod, local_defs, expr.value)
            if owner is None or owner[0] != "module":
                return None
            name = f"{owner[1]}.{expr.attr}"
            if expr.attr == "partial" and owner[1] == "functools":
                return ("partial", None)
            if _module_file(name, self.repo_root) is not None:
                return ("module", name)
            target = self.package_module(str(owner[1]))
            if target is None or not self.descend:
                return None
            return self.lookup(target, expr.attr)
        return None

    # -- one function ------------------------------------------------------------------------------

    def function(
        self, mod: _Module, func: ast.FunctionDef, bindings: dict[str, _Path], opaque: frozenset[str] = frozenset()
    ) -> set[_Path]:
        """Paths used by `func` when its parameters `bindings` hold params objects. Calls of the names in
        `opaque` are not followed and their arguments are not uses (the runner calling a stage's main)."""
        key = (mod.path, func.lineno, func.col_offset, tuple(sorted(bindings.items())), opaque)
        if key in self.memo:
            return self.memo[key]
        self.memo[key] = set()  # recursion: the outer call collects the same uses
        used = self._function(mod, func, bindings, opaque)
        self.memo[key] = used
        return used

    def _function(self, mod, func, bindings, opaque) -> set[_Path]:
        env: dict[str, set[_Path]] = {name: {path} for name, path in bindings.items()}
        local_defs = {
            n.name: n
            for n in ast.walk(func)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n is not func
        }
        global_names = {
            n for node in ast.walk(func) if isinstance(node, (ast.Global, ast.Nonlocal)) for n in node.names
        }
        parent: dict[int, ast.AST] = {}
        for node in ast.walk(func):
            for child in ast.iter_child_nodes(node):
                parent[id(child)] = node

        def resolve(expr: ast.expr) -> set[_Path]:
            if isinstance(expr, ast.Name) and isinstance(expr.ctx, ast.Load):
                return set(env.get(expr.id, ()))
            if isinstance(expr, ast.Attribute) and isinstance(expr.ctx, ast.Load):
                out = set()
                for path in resolve(expr.value):
                    if (
                        self.schema.node(path) not in (None, False)
                        and self.schema.node(path + (expr.attr,)) is not False
                    ):
                        out.add(path + (expr.attr,))
                return out
            return set()

        def alias_pairs(node: ast.AST):
            """(target name, value expr) pairs of simple assignments."""
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        yield target, node.value
                    elif (
                        isinstance(target, (ast.Tuple, ast.List))
                        and isinstance(node.value, (ast.Tuple, ast.List))
                        and len(target.elts) == len(node.value.elts)
                    ):
                        for t, v in zip(target.elts, node.value.elts, strict=True):
                            if isinstance(t, ast.Name):
                                yield t, v

        aliased: set[int] = set()  # value expressions consumed by an alias
        changed = True
        while changed:
            changed = False
            for node in ast.walk(func):
                for target, value in alias_pairs(node):
                    if target.id in global_names:
                        continue  # escapes the function: a use, below
                    paths = resolve(value)
                    if paths:
                        aliased.add(id(value))
                        if not paths <= env.setdefault(target.id, set()):
                            env[target.id] |= paths
                            changed = True

        used: set[_Path] = set()
        for node in ast.walk(func):
            if not isinstance(node, (ast.Name, ast.Attribute)):
                continue
            paths = resolve(node)
            if not paths:
                continue
            up = parent.get(id(node))
            if isinstance(up, ast.Attribute) and up.value is node and resolve(up):
                continue  # the longer chain is the use
            if id(node) in aliased:
                continue
            if isinstance(up, (ast.Call, ast.keyword)):
                call = up if isinstance(up, ast.Call) else parent.get(id(up))
                if isinstance(call, ast.Call) and call.func is not node:
                    if isinstance(call.func, ast.Name) and call.func.id in opaque:
                        continue
                    if all(self.schema.node(p) is None for p in paths):
                        used |= paths  # a leaf handed on: that leaf
                        continue
                    followed = self.follow_call(mod, local_defs, call, node, paths)
                    if followed is not None:
                        used |= followed
                        continue
            used |= paths  # used whole: all leaves under it
        return used

    def follow_call(self, mod, local_defs, call: ast.Call, arg: ast.expr, paths: set[_Path]) -> set[_Path] | None:
        """Uses when `arg` (holding `paths`) is passed to an analysable function; None when it is not one."""
        callee = self.resolve_callee(mod, local_defs, call.func)
        args, keywords = list(call.args), list(call.keywords)
        if callee is not None and callee[0] == "partial":
            if not args:
                return None
            callee = self.resolve_callee(mod, local_defs, args[0])
            args = args[1:]
        if callee is None or callee[0] != "function":
            return None
        target_mod, func = callee[1]
        if func.decorator_list and any(
            getattr(d, "id", getattr(d, "attr", "")) in ("property", "staticmethod", "classmethod")
            for d in func.decorator_list
        ):
            return None
        positional = [a.arg for a in func.args.posonlyargs + func.args.args]
        if positional and positional[0] in ("self", "cls"):
            return None
        name = None
        if arg in args:
            index = args.index(arg)
            if any(isinstance(a, ast.Starred) for a in args[:index]) or index >= len(positional):
                return None
            name = positional[index]
        else:
            for kw in keywords:
                if kw.value is arg and kw.arg is not None:
                    if kw.arg in positional or kw.arg in [a.arg for a in func.args.kwonlyargs]:
                        name = kw.arg
            if name is None:
                return None
        used: set[_Path] = set()
        for path in paths:
            used |= self.function(target_mod, func, {name: path})
        return used


def _stage_run_call(mod: _Module, analysis: _ParamsAnalysis) -> ast.Call | None:
    """The script's `stage.run(main, ...)` call, if any."""
    for node in ast.walk(mod.tree):
        if isinstance(node, ast.Call) and node.args:
            callee = node.func
            if isinstance(callee, ast.Attribute) and callee.attr == "run":
                owner = analysis.resolve_callee(mod, {}, callee.value)
                if owner == ("module", f"{analysis.package}.stage"):
                    return node
            if isinstance(callee, ast.Name) and mod.imports.get(callee.id) == (f"{analysis.package}.stage", "run"):
                return node
    return None


def _runner_reads(analysis: _ParamsAnalysis) -> set[_Path]:
    """What `<package>/stage.py`'s `run` reads before calling the stage's main (e.g. model.threads)."""
    file = _module_file(f"{analysis.package}.stage", analysis.repo_root)
    if file is None:
        return set()
    mod = analysis.module(file)
    func = mod.functions.get("run")
    if func is None:
        return set()
    roots = {
        t.id
        for node in ast.walk(func)
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Call)
        and getattr(node.value.func, "id", getattr(node.value.func, "attr", "")) in ("load_params", "parse_params")
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    opaque = frozenset(a.arg for a in func.args.args)
    used: set[_Path] = set()
    for root in roots:
        used |= analysis.function(mod, func, {root: ()}, opaque)
    return used


def params_read(script: Path, package_root: Path | None = None, *, descend: bool = True) -> set[str]:
    """Leaf keys of params.yaml that a stage script reads: attribute chains rooted at its `main(params, args)`
    (the function given to `stage.run`), through local aliases (`tp = params.train`), through calls of
    functions of the script and (with `descend`) of the package that receive a params object, plus what
    `stage.run` itself reads. A section used whole (handed to anything else, iterated, stored, returned)
    counts as all the leaves under it; a dict- or list-valued field is one leaf."""
    script = Path(script).resolve()
    package_root = Path(package_root).resolve() if package_root else _find_package_root(script)
    return set(_cached("params", script, package_root, lambda: _params_read(script, package_root, descend), descend))


def _params_read(script: Path, package_root: Path, descend: bool) -> set[str]:
    schema = Schema.from_config(package_root / "config.py")
    analysis = _ParamsAnalysis(schema, package_root.parent, package_root.name, descend)
    mod = analysis.module(script)
    call = _stage_run_call(mod, analysis)
    main = None
    if call is not None and isinstance(call.args[0], ast.Name):
        main = mod.functions.get(call.args[0].id)
    main = main or mod.functions.get("main")
    used: set[_Path] = set()
    if main is not None and main.args.args:
        used |= analysis.function(mod, main, {main.args.args[0].arg: ()})
    if call is not None:
        used |= _runner_reads(analysis)
    leaves: set[str] = set()
    for path in used:
        leaves |= schema.leaves(path)
    return leaves


def _find_package_root(script: Path) -> Path:
    for parent in script.parents:
        if (parent / "r1interp" / "config.py").is_file():
            return parent / "r1interp"
    raise FileNotFoundError(f"{script}: no r1interp/ package above it")


# ============================================================================ dvc.yaml


@dataclasses.dataclass
class Stage:
    """One (expanded) stage of dvc.yaml."""

    name: str  # as DVC names it: `organism@base`, `train@all`
    template: str  # the name under `stages:`
    script: str | None  # repo-relative path of the Python script its cmd runs
    deps: list[str]
    params: list[str] | None  # leaf/section keys of params.yaml; None: the whole file
    other_params: list = dataclasses.field(default_factory=list)


_VAR = re.compile(r"\$\{\s*([^}]+?)\s*\}")


def _lookup_var(expr: str, context: dict):
    value = context
    for part in expr.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise KeyError(expr)
    return value


def _substitute(value, context: dict):
    if isinstance(value, str):
        whole = _VAR.fullmatch(value.strip())
        if whole:
            try:
                return _lookup_var(whole.group(1), context)
            except KeyError:
                return value

        def one(m):
            try:
                return str(_lookup_var(m.group(1), context))
            except KeyError:
                return m.group(0)

        return _VAR.sub(one, value)
    if isinstance(value, list):
        return [_substitute(v, context) for v in value]
    if isinstance(value, dict):
        return {_substitute(k, context): _substitute(v, context) for k, v in value.items()}
    return value


def _script_of(cmd) -> str | None:
    text = " ".join(cmd) if isinstance(cmd, list) else str(cmd or "")
    words = text.split()
    for i, word in enumerate(words):
        if re.fullmatch(r"python[\d.]*", Path(word).name) and i + 1 < len(words) and words[i + 1].endswith(".py"):
            return words[i + 1]
    return None


def _dep_path(entry) -> str:
    return str(next(iter(entry)) if isinstance(entry, dict) else entry).strip().rstrip("/")


def _params_entries(entries) -> tuple[list[str] | None, list]:
    keys: list[str] = []
    whole = False
    other = []
    for entry in entries or []:
        if isinstance(entry, str):
            keys.append(entry)
        elif isinstance(entry, dict):
            for file, sub in entry.items():
                if file != PARAMS_FILE:
                    other.append({file: sub})
                elif not sub:
                    whole = True
                else:
                    keys.extend(sub)
    return (None if whole else keys), other


def load_stages(dvc_yaml: Path) -> list[Stage]:
    """The stages of dvc.yaml with `foreach` / `matrix` expanded (their `${...}` resolved against params.yaml
    and the dvc.yaml `vars` mappings where possible)."""
    dvc_yaml = Path(dvc_yaml)
    doc = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}
    context: dict = {}
    params_file = dvc_yaml.parent / PARAMS_FILE
    if params_file.is_file():
        context.update(yaml.safe_load(params_file.read_text(encoding="utf-8")) or {})
    for var in doc.get("vars") or []:
        if isinstance(var, dict):
            context.update(var)
    out: list[Stage] = []

    def add(name: str, template: str, body: dict) -> None:
        params, other = _params_entries(body.get("params"))
        out.append(
            Stage(
                name,
                template,
                _script_of(body.get("cmd")),
                [_dep_path(d) for d in body.get("deps") or []],
                params,
                other,
            )
        )

    for name, body in (doc.get("stages") or {}).items():
        if "foreach" in body:
            items = _substitute(body["foreach"], context)
            pairs = (
                list(items.items())
                if isinstance(items, dict)
                else [(str(v), v) for v in items]
                if isinstance(items, list)
                else [("?", items)]
            )
            for key, item in pairs:
                add(f"{name}@{key}", name, _substitute(body["do"], {**context, "key": key, "item": item}))
        elif "matrix" in body:
            dims = {k: _substitute(v, context) for k, v in body["matrix"].items()}
            combos: list[dict] = [{}]
            for dim, values in dims.items():
                values = values if isinstance(values, list) else [values]
                combos = [{**c, dim: v} for c in combos for v in values]
            spec = {k: v for k, v in body.items() if k != "matrix"}
            for combo in combos:
                key = "-".join(str(v) for v in combo.values())
                add(f"{name}@{key}", name, _substitute(spec, {**context, "item": combo}))
        else:
            add(name, name, body)
    return out


def _repo_files(directory: Path) -> set[Path]:
    return {
        p
        for p in directory.rglob("*")
        if p.is_file()
        and not any(part in _IGNORED_PARTS for part in p.parts)
        and p.suffix not in _IGNORED_SUFFIXES
        and not p.name.startswith(".")
    }


def _is_code(dep: str, package: str) -> bool:
    return dep == package or dep.startswith(f"{package}/") or dep == SCRIPT_DIR or dep.startswith(f"{SCRIPT_DIR}/")


def _covers(dep: str, path: str) -> bool:
    return path == dep or path.startswith(dep.rstrip("/") + "/")


@dataclasses.dataclass
class DepReport:
    needed: list[str]  # the script and its import closure
    missing: list[str]  # needed, not covered by a declared dep
    overdeclared: list[str]  # declared code deps (files, or directories holding files) nothing needs


def check_deps(dvc_yaml: Path, package: str = "r1interp") -> dict[str, DepReport]:
    dvc_yaml = Path(dvc_yaml)
    root = dvc_yaml.parent.resolve()
    closures: dict[str, set[str]] = {}
    out: dict[str, DepReport] = {}
    for stage in load_stages(dvc_yaml):
        if stage.script is None:
            continue
        if stage.script not in closures:
            closures[stage.script] = import_closure(root / stage.script, root / package) | {stage.script}
        needed = closures[stage.script]
        missing = sorted(p for p in needed if not any(_covers(d, p) for d in stage.deps))
        over = []
        for dep in stage.deps:
            if not _is_code(dep, package) or "${" in dep:
                continue
            target = root / dep
            if target.is_dir():
                extra = [
                    f
                    for f in _repo_files(target)
                    if not any(_covers(n, f.relative_to(root).as_posix()) for n in needed)
                ]
                if extra:
                    over.append(dep)
            elif dep not in needed and not any(_covers(n, dep) for n in needed):
                over.append(dep)
        out[stage.name] = DepReport(sorted(needed), missing, over)
    return out


def missing_deps(dvc_yaml: Path) -> dict[str, list[str]]:
    """Stage -> files its script runs (script + import closure) that no declared dep covers."""
    return {name: r.missing for name, r in check_deps(dvc_yaml).items()}


def overdeclared_deps(dvc_yaml: Path) -> dict[str, list[str]]:
    """Stage -> declared code deps (under r1interp/ or stages/) that its script does not run (a directory
    counts when it holds any file the script does not need)."""
    return {name: r.overdeclared for name, r in check_deps(dvc_yaml).items()}


@dataclasses.dataclass
class ParamsReport:
    read: list[str]  # leaves the code reads
    expected: list[str]  # read minus RUNTIME_KNOBS: what must be declared
    declared: list[str] | None  # declared leaves; None: the whole file
    undeclared: list[str]
    overdeclared: list[str]
    knobs_declared: list[str]


def declared_leaves(keys: list[str], schema: Schema) -> set[str]:
    """dvc.yaml params keys -> leaves (a section covers its leaves; unknown keys stay as they are)."""
    out: set[str] = set()
    for key in keys:
        path = tuple(key.split("."))
        out |= schema.leaves(path) if schema.node(path) is not False else {key}
    return out


def check_params(dvc_yaml: Path, package: str = "r1interp") -> dict[str, ParamsReport]:
    dvc_yaml = Path(dvc_yaml)
    root = dvc_yaml.parent.resolve()
    schema = Schema.from_config(root / package / "config.py")
    reads: dict[str, set[str]] = {}
    out: dict[str, ParamsReport] = {}
    for stage in load_stages(dvc_yaml):
        if stage.script is None:
            continue
        if stage.script not in reads:
            reads[stage.script] = params_read(root / stage.script, root / package)
        read = reads[stage.script]
        expected = read - set(RUNTIME_KNOBS)
        if stage.params is None:
            declared = None
            if stage.template in WHOLE_FILE_STAGES:
                under, over, knobs = [], [], []
            else:
                under, over, knobs = [], [f"{PARAMS_FILE} (whole file)"], sorted(RUNTIME_KNOBS)
        else:
            declared_set = declared_leaves(stage.params, schema)
            declared = sorted(declared_set)
            knobs = sorted(declared_set & set(RUNTIME_KNOBS))
            if stage.template in WHOLE_FILE_STAGES:
                under, over = [f"{PARAMS_FILE} (whole file)"], []
            else:
                under, over = sorted(expected - declared_set), sorted(declared_set - expected)
        out[stage.name] = ParamsReport(sorted(read), sorted(expected), declared, under, over, knobs)
    return out


def undeclared_params(dvc_yaml: Path) -> dict[str, list[str]]:
    return {name: r.undeclared for name, r in check_params(dvc_yaml).items()}


def overdeclared_params(dvc_yaml: Path) -> dict[str, list[str]]:
    return {name: r.overdeclared for name, r in check_params(dvc_yaml).items()}


# ============================================================================ suggest / write


def suggest(dvc_yaml: Path, package: str = "r1interp") -> dict[str, dict[str, list[str] | None]]:
    """Per stage (as named under `stages:`): the code deps (script first, then the package files in order)
    and params (leaves; None: the whole file) that make tests/test_stage_contract.py pass. Data deps are not
    part of it: keep them as they are."""
    deps = check_deps(dvc_yaml, package)
    params = check_params(dvc_yaml, package)
    out: dict[str, dict[str, list[str] | None]] = {}
    for stage in load_stages(dvc_yaml):
        if stage.name not in deps:
            continue
        entry = out.setdefault(stage.template, {"deps": [], "params": []})
        code = [stage.script] + sorted(p for p in deps[stage.name].needed if p != stage.script)
        entry["deps"] = list(dict.fromkeys([*entry["deps"], *code]))  # type: ignore[misc]
        if stage.template in WHOLE_FILE_STAGES:
            entry["params"] = None
        elif entry["params"] is not None:
            entry["params"] = sorted(set(entry["params"]) | set(params[stage.name].expected))
    return out


HEADER = (
    "# Each stage's code deps (its script and every r1interp file it imports) and params (the leaf keys it reads,\n"
    "# minus the runtime knobs in r1interp/contract.py) are checked by tests/test_stage_contract.py.\n"
    "# After code edits: `python -m r1interp.contract` shows the differences, `--write` re-syncs them here.\n"
)


def _block(lines: list[str], start: int, end: int, key: str) -> tuple[int, int, int] | None:
    """(key line, first item line, end) of the `key:` list inside lines[start:end]."""
    for i in range(start, end):
        m = re.match(rf"^(\s*){key}:\s*(#.*)?$", lines[i])
        if m:
            indent = len(m.group(1))
            j = i + 1
            while j < end and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent):
                j += 1
            while j > i + 1 and not lines[j - 1].strip():
                j -= 1
            return i, i + 1, j
    return None


def _item_path(line: str) -> str | None:
    m = re.match(r"^\s*-\s+(['\"]?)([^'\"#:\s]+)\1\s*(:)?\s*(#.*)?$", line)
    return m.group(2) if m else None


def _is_params_file_entry(line: str) -> bool:
    return bool(re.match(rf"^\s*-\s+['\"]?{re.escape(PARAMS_FILE)}['\"]?\s*:", line))


def write(dvc_yaml: Path, package: str = "r1interp") -> str:
    """Rewrite dvc.yaml's code deps and params to `suggest`'s, keeping every other line (data deps, outs,
    comments); trailing comments of code deps that stay are kept. Returns the new text (also written)."""
    dvc_yaml = Path(dvc_yaml)
    wanted = suggest(dvc_yaml, package)
    lines = dvc_yaml.read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"^  [A-Za-z0-9_.-]+:\s*(#.*)?$", line)]
    stages_at = next(i for i, line in enumerate(lines) if re.match(r"^stages:\s*(#.*)?$", line))
    starts = [i for i in starts if i > stages_at]
    for n, start in reversed(list(enumerate(starts))):
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        top = next((i for i in range(start + 1, end) if re.match(r"^\S", lines[i])), end)
        end = min(end, top)
        name = lines[start].strip().split(":")[0]
        if name not in wanted:
            continue
        # params first (it comes after deps), so the deps indices stay valid
        block = _block(lines, start, end, "params")
        if block is not None and wanted[name]["params"] is not None:
            _, first, stop = block
            indent = re.match(r"^(\s*)", lines[first]).group(1) if first < stop else " " * 6
            keep, in_entry = [], False  # other files' entries (`- other.yaml: [...]`) and comment lines stay
            for line in lines[first:stop]:
                depth = len(line) - len(line.lstrip())
                if line.lstrip().startswith("- ") and depth == len(indent):
                    in_entry = bool(re.match(r"^\s*-\s+[^#]*:\s*(\S.*)?$", line)) and not _is_params_file_entry(line)
                    if in_entry:
                        keep.append(line)
                elif in_entry or line.lstrip().startswith("#"):
                    keep.append(line)
            lines[first:stop] = [f"{indent}- {key}" for key in wanted[name]["params"]] + keep  # type: ignore[union-attr]
        elif block is None and wanted[name]["params"] and (deps := _block(lines, start, end, "deps")) is not None:
            key_at, _, stop = deps  # a stage that reads params but declares none: a block after its deps
            pad = re.match(r"^(\s*)", lines[key_at]).group(1)
            lines[stop:stop] = [f"{pad}params:"] + [f"{pad}  - {key}" for key in wanted[name]["params"]]  # type: ignore[union-attr]
        block = _block(lines, start, end, "deps")
        if block is not None:
            _, first, stop = block
            items = lines[first:stop]
            indent = re.match(r"^(\s*)", items[0]).group(1) if items else " " * 6
            comments = {}
            for line in items:
                path = _item_path(line)
                if path and _is_code(path, package) and "#" in line:
                    comments[path] = line[line.index("#") :]
            code = [
                f"{indent}- {p}" + (f"        {comments[p]}" if p in comments else "") for p in wanted[name]["deps"]
            ]  # type: ignore[union-attr]
            rest = [
                line for line in items if not ((p := _item_path(line)) and _is_code(p, package) and "${" not in line)
            ]
            lines[first:stop] = code + rest
    text = "\n".join(lines) + "\n"
    if "tests/test_stage_contract.py" not in text.split("stages:")[0]:
        text = HEADER + "\n" + text
    dvc_yaml.write_text(text, encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m r1interp.contract", description=__doc__.split("\n\n")[0])
    parser.add_argument("dvc_yaml", nargs="?", default="dvc.yaml")
    parser.add_argument("--write", action="store_true", help="rewrite the code deps and params of dvc.yaml")
    args = parser.parse_args(argv)
    path = Path(args.dvc_yaml)
    deps, params = check_deps(path), check_params(path)
    if args.write:
        write(path)
        print(f"{path}: code deps and params re-synced")
        return 0
    problems = 0
    for stage, entry in suggest(path).items():
        print(f"{stage}:")
        print("  deps:")
        print("".join(f"    - {d}\n" for d in entry["deps"]), end="")  # type: ignore[union-attr]
        print("  params:")
        print(
            "    - params.yaml:" if entry["params"] is None else "".join(f"    - {p}\n" for p in entry["params"]),
            end="",
        )
        if entry["params"] is None:
            print()
    for name in deps:
        for what, items in (
            ("missing deps", deps[name].missing),
            ("over-declared deps", deps[name].overdeclared),
            ("undeclared params", params[name].undeclared),
            ("over-declared params", params[name].overdeclared),
            ("runtime knobs declared", params[name].knobs_declared),
        ):
            if items:
                problems += len(items)
                print(f"# {name}: {what}: {', '.join(items)}")
    print(f"# {problems} difference(s) from dvc.yaml" + (" (run with --write to re-sync)" if problems else ""))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
