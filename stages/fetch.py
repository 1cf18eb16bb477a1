"""Stage `fetch`: the active profile's Hub models at their pinned commits -> models/hub/<role>.

`organism@<role>` then installs each into the role's model location (models/lm/<role>) that every later
stage loads. The organism profile downloads nothing (its models are trained by `organism@<role>`), but the
stage still writes models/hub/README.md so that its DVC output exists for every profile. Model directories
left by another profile are kept: the download is expensive and fetch.json says what each one is.
"""

import r1interp  # noqa: F401  first import: pins deterministic numerics before torch/numpy load

# isort: split

from r1interp import paths, stage
from r1interp.fetch import fetch_model
from r1interp.io import write_text
from r1interp.models import ROLES, model_spec

OUT = paths.HUB_DIR


def main(params, args):
    profile = params.model.profile
    specs = [model_spec(profile, role) for role in ROLES]
    hub_specs = [s for s in specs if s.repo_id]
    if not hub_specs:
        write_text(paths.HUB_README, f"# {OUT}\n\nProfile `{profile}` downloads no model: its models are "
                   f"trained by the `organism` stage into {paths.LM_DIR}/.\nThis file is the `fetch` stage's "
                   "output for that profile.\n")  # fmt: skip
        print(f"fetch: profile {profile!r} has no Hub models, nothing to download -> {paths.HUB_README}")
        return
    lines = [f"# {OUT}\n\nProfile `{profile}`, downloaded by the `fetch` stage (safetensors only, "
             "hashes checked against the Hub; details in each directory's fetch.json):\n"]  # fmt: skip
    total = 0
    for spec in hub_specs:
        receipt = fetch_model(spec, spec.download_dir)
        total += receipt["bytes"]
        lines.append(f"- `{spec.download_dir}`: {spec.role}, `{spec.repo_id}` at commit `{spec.revision}`")
    write_text(paths.HUB_README, "\n".join(lines) + "\n")
    print(f"fetch: {len(hub_specs)} models of profile {profile!r} ready ({total / 1e9:.2f} GB) under {OUT}")


if __name__ == "__main__":
    stage.run(main)
