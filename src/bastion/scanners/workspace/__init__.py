"""Workspace checks: secrets, personal data, unsafe ML code, dependencies and Dockerfiles in a project tree.

Entry point: :func:`bastion.scanners.workspace.scan.scan_workspace`, called by the engine for each file.
"""
