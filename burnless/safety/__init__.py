"""What may leave the machine, and what a worker may do.

- ``policy``       ``allows(tier, sensitive)``: the one "sensitive work stays local" decision;
                   ``Policy.mask``: the one verb that hides secrets
- ``secrets``      secret detection and stable, keyed masks (``[REDACTED:<kind>:<8 hex>]``)
- ``sensitivity``  why a task is sensitive (patterns, paths, labels, unmasked secrets)
- ``environment``  the scrubbed environment of workers and verify commands
- ``nesting``      how deep burnless calls nest, and the session that called this one
"""
