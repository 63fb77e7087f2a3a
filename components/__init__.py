"""KFP components: one pipeline step per module, each a thin `@dsl.component` over `pushgen.*`.

Every component runs from the one project image built by the root `Dockerfile` (pyproject.toml +
constraints.txt installed at build time), so a cluster run needs no runtime `pip install`:

    from components import COMPONENT_DEFAULTS

    @dsl.component(**COMPONENT_DEFAULTS)
    def clean(...): ...

`PUSHGEN_IMAGE` picks the decorators' default image; the training pipeline also has an `image`
run parameter (`task.set_container_image`), so one compiled spec runs any build of the project.
Locally the same components run under `kfp.local.SubprocessRunner(use_venv=False)`: the image is
not pulled, the code runs in the current environment, and `install_kfp_package=False` keeps kfp
from being pip-installed at run time (no network needed).

Layer 4: may import everything in `pushgen` below the CLI, `monitoring` and `serving`; never
`pipelines` or the CLI.
"""

import os

# The image every step runs in; override per build (`docker build -t $PUSHGEN_IMAGE .`).
DEFAULT_IMAGE = "ghcr.io/pushgen/pushgen:0.1.0"
PUSHGEN_IMAGE = os.environ.get("PUSHGEN_IMAGE", DEFAULT_IMAGE)

# Keyword arguments for `@dsl.component`: the project image, and no runtime pip install of kfp
# (it is in the image, and the local runner must work offline).
COMPONENT_DEFAULTS: dict = {"base_image": PUSHGEN_IMAGE, "install_kfp_package": False}
