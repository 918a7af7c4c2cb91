"""The confinement of submissions: the layers the kernel allows, the warm worker, the supervision of one child, and
the child's runtime (copied into the runtime folder)."""
