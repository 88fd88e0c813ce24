"""What a request's final state means (specs/ROFR.md outcome table) and who gets the GPUs."""

from __future__ import annotations

from firstright.domain.rofr.request import RofrRequest
from firstright.domain.rofr.states import OUTCOME_OF_STATE, Outcome


def outcome_of(request: RofrRequest) -> Outcome:
    return OUTCOME_OF_STATE[request.state]


def _third_party(request: RofrRequest) -> dict[str, int]:
    """Signed deals if any, else the last deal approved in the current release, else the
    released quantity to the offeror (the owner may contract with it)."""
    out: dict[str, int] = {}
    if request.signatures:
        for signature in request.signatures:
            out[signature.party] = out.get(signature.party, 0) + signature.quantity_gpus
        return out
    if request.approvals:
        last = request.approvals[-1]
        return {last.party: last.quantity_gpus}
    offeror = request.named_offeror
    available = request.available_quantity
    if offeror is not None and available:
        return {offeror: available}
    return out


def allocation_of(request: RofrRequest) -> dict[str, int]:
    """GPUs per party (the holder's cloud and third parties) for this request."""
    outcome = outcome_of(request)
    holder = request.contract.holder
    allocation: dict[str, int] = {}
    if request.holder_quantity and outcome in (
        Outcome.ALLOCATE_HOLDER,
        Outcome.SPLIT,
        Outcome.REOFFER_REQUIRED,
    ):
        allocation[holder] = request.holder_quantity
    if outcome in (Outcome.ALLOCATE_THIRD_PARTY, Outcome.SPLIT, Outcome.NO_ROFR):
        for party, quantity in _third_party(request).items():
            allocation[party] = allocation.get(party, 0) + quantity
    elif outcome is Outcome.VIOLATION and request.violation is not None:
        allocation[request.violation.party] = request.violation.quantity_gpus
    total = request.full_quantity
    if total is not None and outcome is not Outcome.NO_ROFR and outcome is not Outcome.VIOLATION:
        assert sum(allocation.values()) <= total, (request.request_id, allocation, total)
    return allocation
