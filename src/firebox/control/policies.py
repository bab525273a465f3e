"""Resource-based policies: AddPermission, RemovePermission, GetPolicy, and the check a
trigger makes before it invokes a function (function URLs with AuthType NONE, EventBridge).

Keys in the metadata store:
  policy  {name}/{qualifier}     one policy document per function and qualifier
                                 (qualifier "" for the unqualified function)

Statements are kept in the exact shape GetPolicy returns them in, so the check below reads
the same document a user sees.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import re
from typing import Any

from firebox.arn import LATEST
from firebox.control.catalog import (
    ALIAS,
    FUNCTION,
    VERSION,
    Catalog,
    check_revision,
    new_revision,
    version_key,
)
from firebox.messages import (
    ALIAS_ARN_NOT_FOUND,
    POLICY_NONE,
    POLICY_NONE_FOR_FUNCTION,
    POLICY_ON_LATEST,
    POLICY_PRINCIPAL_INVALID,
    POLICY_REVISION_MISMATCH,
    POLICY_STATEMENT_EXISTS,
    POLICY_STATEMENT_MISSING,
    RESOURCE_NOT_FOUND,
)
from firebox.store.metadata.base import DeletePrefix, Doc
from firebox.store.metadata.feed import Change

POLICY = "policy"

_ACCOUNT_RE = re.compile(r"^\d{12}$")


def _principal_ok(principal: str) -> bool:
    """Lambda takes "*", an account, an ARN or an AWS service principal."""
    if principal == "*" or _ACCOUNT_RE.match(principal) or principal.startswith("arn:"):
        return True
    return principal.endswith((".amazonaws.com", ".amazonaws.com.cn", ".amazon.com"))


def _key(name: str, qualifier: str | None) -> str:
    return f"{name}/{qualifier or ''}"


def _principal(value: str) -> Any:
    """Lambda's rendering of the Principal parameter in the policy document."""
    if value == "*":
        return "*"
    if _ACCOUNT_RE.match(value):
        return {"AWS": f"arn:aws:iam::{value}:root"}
    if value.startswith("arn:"):
        return {"AWS": value}
    return {"Service": value}


class Policies:
    def __init__(self, catalog: Catalog) -> None:
        self.c = catalog
        # The trigger paths check policies per request: keep parsed statements in memory,
        # dropped on every write (writes come from worker threads; a dict pop is atomic).
        self._cache: dict[str, list[Doc]] = {}
        # Bumped on every drop: statements read while a write raced are not kept.
        self._changes = 0
        catalog.on_delete.append(self.drop_function)
        catalog.listeners.append(self.prune)

    # --- control plane -----------------------------------------------------------------

    def _check_target(self, name: str, qualifier: str | None) -> None:
        self.c.function_doc(name)
        if qualifier is None:
            return
        if qualifier == LATEST:
            raise POLICY_ON_LATEST()
        if qualifier.isdigit():
            self.c.version_doc(name, qualifier)
        else:
            self.c.alias_doc(name, qualifier, ALIAS_ARN_NOT_FOUND)

    def add(self, name: str, qualifier: str | None, params: Doc) -> Doc:
        """AddPermission; StatementId, Action and Principal were checked against the model."""
        sid, action, principal = params["StatementId"], params["Action"], params["Principal"]
        if not _principal_ok(principal):
            raise POLICY_PRINCIPAL_INVALID()
        url_auth = params.get("FunctionUrlAuthType")
        with self.c.lock:
            self._check_target(name, qualifier)
            doc = self.c.store.get(POLICY, _key(name, qualifier)) or {"Statement": []}
            check_revision(
                params.get("RevisionId"), doc.get("RevisionId", ""), POLICY_REVISION_MISMATCH
            )
            if any(s["Sid"] == sid for s in doc["Statement"]):
                raise POLICY_STATEMENT_EXISTS(sid=sid)
            statement: Doc = {
                "Sid": sid,
                "Effect": "Allow",
                "Principal": _principal(principal),
                "Action": action,
                "Resource": self.c.arn(name, qualifier),
            }
            condition: dict[str, dict[str, str]] = {}
            if params.get("SourceAccount"):
                condition.setdefault("StringEquals", {})["AWS:SourceAccount"] = str(
                    params["SourceAccount"]
                )
            if params.get("PrincipalOrgID"):
                condition.setdefault("StringEquals", {})["aws:PrincipalOrgID"] = str(
                    params["PrincipalOrgID"]
                )
            if params.get("EventSourceToken"):
                condition.setdefault("StringEquals", {})["lambda:EventSourceToken"] = str(
                    params["EventSourceToken"]
                )
            if url_auth:
                condition.setdefault("StringEquals", {})["lambda:FunctionUrlAuthType"] = url_auth
            if params.get("SourceArn"):
                condition.setdefault("ArnLike", {})["AWS:SourceArn"] = str(params["SourceArn"])
            if condition:
                statement["Condition"] = condition
            doc["Statement"].append(statement)
            doc["RevisionId"] = new_revision()
            self.c.store.put(POLICY, _key(name, qualifier), doc)
            self._forget(_key(name, qualifier))
        return {"Statement": json.dumps(statement)}

    def remove(self, name: str, qualifier: str | None, sid: str, revision: str | None) -> None:
        with self.c.lock:
            if self.c.store.get(FUNCTION, name) is None:
                raise POLICY_NONE_FOR_FUNCTION(arn=self.c.arn(name))
            self._check_target(name, qualifier)
            doc = self.c.store.get(POLICY, _key(name, qualifier))
            if doc is None:
                raise POLICY_NONE()
            check_revision(revision, doc["RevisionId"], POLICY_REVISION_MISMATCH)
            kept = [s for s in doc["Statement"] if s["Sid"] != sid]
            if len(kept) == len(doc["Statement"]):
                raise POLICY_STATEMENT_MISSING(sid=sid)
            if kept:
                doc["Statement"] = kept
                doc["RevisionId"] = new_revision()
                self.c.store.put(POLICY, _key(name, qualifier), doc)
            else:
                self.c.store.delete(POLICY, _key(name, qualifier))
            self._forget(_key(name, qualifier))

    def get(self, name: str, qualifier: str | None) -> Doc:
        self._check_target(name, qualifier)
        doc = self.c.store.get(POLICY, _key(name, qualifier))
        if doc is None or not doc["Statement"]:
            raise RESOURCE_NOT_FOUND()
        policy = {"Version": "2012-10-17", "Id": "default", "Statement": doc["Statement"]}
        return {"Policy": json.dumps(policy), "RevisionId": doc["RevisionId"]}

    def on_change(self, change: Change) -> None:
        """A write anywhere in the fleet (the metadata store's change feed)."""
        if change.kind not in ("", POLICY):
            return
        for key in list(self._cache):
            if change.covers(POLICY, key):
                self._cache.pop(key, None)

    def drop_function(self, name: str) -> None:
        """The function is gone: so are all its policies (catalog.on_delete hook)."""
        self.c.store.batch([DeletePrefix(POLICY, f"{name}/")])
        self._changes += 1  # also for a read in flight of a policy not cached yet
        for key in [k for k in list(self._cache) if k.startswith(f"{name}/")]:
            self._forget(key)

    def prune(self, name: str) -> None:
        """catalog.listeners hook: a deleted alias or version takes its policy with it."""
        for key, _ in self.c.store.list(POLICY, prefix=f"{name}/"):
            qualifier = key.split("/", 1)[1]
            if not qualifier:
                continue
            if qualifier.isdigit():
                gone = self.c.store.get(VERSION, version_key(name, int(qualifier))) is None
            else:
                gone = self.c.store.get(ALIAS, f"{name}/{qualifier}") is None
            if gone:
                self.drop_qualifier(name, qualifier)

    def drop_qualifier(self, name: str, qualifier: str) -> None:
        self.c.store.delete(POLICY, _key(name, qualifier))
        self._forget(_key(name, qualifier))

    # --- enforcement ---------------------------------------------------------------------

    def _forget(self, key: str) -> None:
        self._changes += 1
        self._cache.pop(key, None)

    def _load(self, key: str) -> list[Doc]:
        changes = self._changes
        doc = self.c.store.get(POLICY, key)
        statements = list(doc["Statement"]) if doc else []
        if changes == self._changes:
            self._cache[key] = statements
        return statements

    async def allows(
        self,
        name: str,
        qualifier: str | None,
        action: str,
        *,
        service: str | None = None,
        source_arn: str | None = None,
        source_account: str | None = None,
        url_auth_type: str | None = None,
        anonymous: bool = False,
    ) -> bool:
        """Whether a statement lets ``service`` (or an anonymous caller) do ``action``.

        The statements come from memory, or are read in a worker thread (trigger paths
        run on the event loop)."""
        key = _key(name, qualifier)
        statements = self._cache.get(key)
        if statements is None:
            statements = await asyncio.to_thread(self._load, key)
        for s in statements:
            if s.get("Effect") != "Allow":
                continue
            if s["Action"] not in (action, "lambda:*", "*"):
                continue
            principal = s["Principal"]
            if principal != "*":
                if anonymous or service is None:
                    continue
                if not isinstance(principal, dict) or principal.get("Service") != service:
                    continue
            if _conditions_hold(
                s.get("Condition") or {}, source_arn, source_account, url_auth_type
            ):
                return True
        return False


def _conditions_hold(
    condition: Doc, source_arn: str | None, source_account: str | None, url_auth_type: str | None
) -> bool:
    equals = condition.get("StringEquals") or {}
    if (
        "lambda:FunctionUrlAuthType" in equals
        and equals["lambda:FunctionUrlAuthType"] != url_auth_type
    ):
        return False
    if "AWS:SourceAccount" in equals and equals["AWS:SourceAccount"] != source_account:
        return False
    wanted_arn = (condition.get("ArnLike") or {}).get("AWS:SourceArn")
    if wanted_arn is not None:
        if source_arn is None or not fnmatch.fnmatchcase(source_arn, wanted_arn):
            return False
    return True
