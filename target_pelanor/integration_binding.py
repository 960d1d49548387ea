"""Pelanor's rule, one integration per OpenAI organization, held by this machine.

An organization added to a Meltano project by inheritance (``meltano add --inherit-from
target-pelanor``) falls back to its parent's value for every setting it does not set
itself: a loader that sets its own ``organization_id`` but forgets ``integration_id`` (or
a ``TARGET_PELANOR_INTEGRATION_ID`` in the shell, which reaches every loader that sets
none) would upload its months into another organization's integration, replacing them.

So the first upload Pelanor accepts into an integration binds it to the organization whose
months it took, in one small file beside this machine's upload records::

    <upload_records_dir>/integration-bindings/<integration_id>.json

From then on a run whose ``organization_id`` is not the integration's stops at start,
before any input is read, and again before each upload (another process may have bound it
meanwhile), with one line naming what the organization lacks. A binding that cannot be
read stops the run too: fail closed. Deleting the file forgets the binding (an integration
that Pelanor now serves for another organization). Pelanor itself also refuses a file of
another organization, so an integration this machine never uploaded to is still guarded
there.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from openai_costs.safe_files import UnsafeFile, read_regular

__all__ = ["BINDINGS_FOLDER", "BindingProblem", "IntegrationBindings"]

BINDINGS_FOLDER = "integration-bindings"
#: A binding is a few dozen bytes; anything larger is not one of ours.
_MAX_SIZE = 64 * 1024


class BindingProblem(Exception):
    """The integration belongs to another organization, or its binding cannot be read;
    ``str()`` is the one line for the user."""


class IntegrationBindings:
    """The bindings kept under one upload records folder."""

    def __init__(self, records_root: Path) -> None:
        self.folder = records_root / BINDINGS_FOLDER

    def path(self, integration_id: str) -> Path:
        """The binding's file (quoted: no identifier makes a path outside the folder)."""
        return self.folder / f"{quote(integration_id, safe='')}.json"

    def organization_of(self, integration_id: str) -> str | None:
        """The organization the integration is bound to; None when it is bound to none.
        Raises :class:`BindingProblem` when the binding cannot be read."""
        path = self.path(integration_id)
        try:
            data = read_regular(path, _MAX_SIZE, follow_links=False)
        except FileNotFoundError:
            return None
        except UnsafeFile as problem:  # a FIFO, a folder, a link, too large
            raise self._unreadable(path, f"it {problem}") from None
        except OSError as error:
            raise self._unreadable(path, error.strerror or type(error).__name__) from None
        try:
            content = json.loads(data)
            organization = content["organization_id"]
            if content["integration_id"] != integration_id or not isinstance(organization, str):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            raise self._unreadable(path, "it is not a binding this target wrote") from None
        return organization

    def check(self, integration_id: str, organization_id: str, plugin: str) -> None:
        """Raise :class:`BindingProblem` unless the integration is free or this
        organization's. ``plugin`` is the loader's name, for the fix."""
        bound_to = self.organization_of(integration_id)
        if bound_to is None or bound_to == organization_id:
            return
        raise BindingProblem(
            f"integration_id {integration_id} is the Pelanor integration of {bound_to} "
            f"(its months were uploaded there from this machine), and Pelanor keeps one "
            f"integration per OpenAI organization: {organization_id} needs an integration of "
            f"its own. Set it on this organization's loader (meltano config set {plugin} "
            f"integration_id <its integration ID>), with the token for it; nothing was "
            f"uploaded. If {integration_id} now really serves {organization_id}, delete "
            f"{self.path(integration_id)}"
        )

    def bind(self, integration_id: str, organization_id: str, at: datetime) -> None:
        """Pelanor accepted this organization's month into the integration: bind them, unless
        a binding exists already (created in one step: the first binding stands)."""
        path = self.path(integration_id)
        content = {
            "integration_id": integration_id,
            "organization_id": organization_id,
            "bound_at": at.isoformat(),
        }
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", dir=self.folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(content, handle, indent=1)
                handle.write("\n")
            with contextlib.suppress(FileExistsError):
                os.link(partial, path)
        finally:
            with contextlib.suppress(OSError):
                Path(partial).unlink()

    def _unreadable(self, path: Path, why: str) -> BindingProblem:
        return BindingProblem(
            f"this machine's binding of an integration to its organization, {path}, cannot "
            f"be read ({why}); nothing was uploaded. Delete it if it is not target-pelanor's "
            "(the next accepted upload writes it again)"
        )
