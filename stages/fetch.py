"""Stage `fetch`: the active profile's Hub models at their pinned commits -> models/hub/<role>.

The organism profile downloads nothing (its models are trained by `organism@<role>`), but the stage
still writes models/hub/README.md so that its DVC output exists for every profile. Model directories
left by another profile are kept: the download is expensive and fetch.json says what each one is.
"""

from pathlib import Path

from r1interp import stage
from r1interp.fetch import fetch_model
from r1interp.io import write_text
from r1interp.models import ROLES, model_spec

OUT = Path("models/hub")


def main(params, args):
    profile = params.model.profile
    specs = [model_spec(profile, role) for role in ROLES]
    hub_specs = [s for s in specs if s.repo_id]
    if not hub_specs:
        write_text(OUT / "README.md", f"# models/hub\n\nProfile `{profile}` downloads no model: its models are "
                   "trained by the `organism` stage into models/organisms/.\nThis file is the `fetch` stage's "
                   "output for that profile.\n")  # fmt: skip
        print(f"fetch: profile {profile!r} has no Hub models, nothing to download -> {OUT / 'README.md'}")
        return
    lines = [f"# models/hub\n\nProfile `{profile}`, downloaded by the `fetch` stage (safetensors only, "
             "hashes checked against the Hub; details in each directory's fetch.json):\n"]  # fmt: skip
    total = 0
    for spec in hub_specs:
        receipt = fetch_model(spec, spec.local_dir)
        total += receipt["bytes"]
        lines.append(f"- `{spec.local_dir}`: {spec.role}, `{spec.repo_id}` at commit `{spec.revision}`")
    write_text(OUT / "README.md", "\n".join(lines) + "\n")
    print(f"fetch: {len(hub_specs)} models of profile {profile!r} ready ({total / 1e9:.2f} GB) under {OUT}")


if __name__ == "__main__":
    stage.run(main)
