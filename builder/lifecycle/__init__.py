"""The build pipeline, one module a phase, as in the CNB lifecycle.

detect -> build -> export, each reading the plain files the previous phase wrote, so every
step can be run, tested and debugged on its own. Buildpacks are run in a sandbox over the
stack's build image (``sandbox``); apps are started by a small static launcher (``launch``).
"""
