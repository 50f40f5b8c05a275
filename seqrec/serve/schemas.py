"""Request and response schemas of the HTTP API (pydantic), with the app's size limits, and the
two ends of a route: :func:`parse_body` (bytes -> request model, or the API's 422/413) and
:func:`json_bytes` (answer -> bytes).

Ids are JSON integers or strings (never booleans or floats); how they match the model's ids is
the id rule of :mod:`seqrec.data.catalogue`, the same as in the library and the command line.
"""

import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetPydanticSchema,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema

from seqrec.serve.errors import ApiError

MAX_K = 1000
MAX_CAP = 100
"""Largest session ``cap`` of ``/rank/value``: the exact capped order keeps ``cap`` arrays of one
float per candidate (10,000 candidates at cap 100: 8 MB)."""
MAX_ID_CHARS = 256


def parse_body(model: type[BaseModel], body: bytes) -> Any:
    """The request body as ``model`` (pydantic-core parses and validates the bytes at once).

    Raises:
        ApiError: 422 naming the field (``body`` for bytes that are not JSON), 413 for a list
            longer than its limit.
    """
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise ApiError.from_validation(error) from None


def json_bytes(payload: Any) -> bytes:
    """An answer as JSON bytes. Response models are declared on the routes for the schema;
    returning bytes skips a second validation pass over our own output."""
    return json.dumps(payload, allow_nan=False).encode()


# JSON integers and strings, checked by pydantic-core itself (no Python call per id: a batch
# may carry 10^5 ids); one error type for anything else
_ID_SCHEMA = core_schema.union_schema(
    [core_schema.int_schema(strict=True),
     core_schema.str_schema(strict=True, max_length=MAX_ID_CHARS)],
    custom_error_type="id_type",
    custom_error_message=f"expected an id: a JSON integer or a string of at most {MAX_ID_CHARS} "
    "characters")

Id = Annotated[int | str, GetPydanticSchema(lambda _type, _handler: _ID_SCHEMA), WithJsonSchema(
    {"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": MAX_ID_CHARS}]})]


class ScoredItem(BaseModel):
    item_id: int | str
    score: float
    rank: int


class RecommendResponse(BaseModel):
    items: list[ScoredItem]
    model_version: str
    unknown_items_dropped: int = Field(
        description="ids in history, include_items or exclude_items unknown to the model (dropped)")
    source: Literal["model", "popular"] = Field(
        description="'popular' when an unknown user got the popularity fallback")


class BatchResult(BaseModel):
    items: list[ScoredItem]
    unknown_items_dropped: int
    source: Literal["model", "popular"]


class BatchResponse(BaseModel):
    results: list[BatchResult]
    model_version: str


class SimilarResponse(BaseModel):
    items: list[ScoredItem]
    model_version: str


class ValueItem(BaseModel):
    item_id: int | str
    rank: int
    probability: float = Field(description="calibrated P(answer | shown)")
    log_prob: float = Field(description="the model's next-item log-probability (normalise)")
    price: float = Field(description="dollars, as sent")
    continuation: float = Field(description="P(session continues after the item), as sent")
    key: float = Field(description="cascade key price * probability / (1 - continuation)")


class ValueRankResponse(BaseModel):
    items: list[ValueItem]
    expected_revenue: float = Field(description="dollars expected from showing items in order")
    model_version: str
    normalise: Literal["catalogue", "eligible"]
    unknown_items_dropped: int = Field(
        description="ids in history, candidates or exclude_items unknown to the model (dropped)")


class ErrorDetail(BaseModel):
    field: str = Field(description="where: a request field such as 'requests[2].user_id', or "
                       "'body'")
    message: str
    type: str


class ErrorResponse(BaseModel):
    """Every 4xx answer: ``detail`` in one line, and the same as a list."""

    detail: str
    errors: list[ErrorDetail]


def request_schemas(max_batch: int, max_items: int) -> tuple[type[BaseModel], type[BaseModel], type[BaseModel]]:
    """Request models with this app's size limits (shown in the OpenAPI schema as maxItems)."""
    IdList = Annotated[list[Id], Field(max_length=max_items)]

    class RecommendRequest(BaseModel):
        """Give exactly one of ``user_id`` (a known user) or ``history`` (item ids, oldest first)."""

        model_config = ConfigDict(extra="forbid")
        user_id: Id | None = None
        history: IdList | None = None
        k: Annotated[StrictInt, Field(ge=1, le=MAX_K)] = 10
        filter_viewed: StrictBool = True
        include_items: IdList | None = None
        exclude_items: IdList | None = None

        @model_validator(mode="after")
        def _exactly_one_source(self) -> "RecommendRequest":
            if (self.user_id is None) == (self.history is None):
                raise PydanticCustomError("one_source", "give exactly one of user_id or history")
            return self

    class BatchRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        requests: Annotated[list[RecommendRequest], Field(min_length=1, max_length=max_batch)]

    class SimilarRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        item_id: Id
        k: Annotated[StrictInt, Field(ge=1, le=MAX_K)] = 10

    return RecommendRequest, BatchRequest, SimilarRequest


def value_request_schema(max_items: int) -> type[BaseModel]:
    """The ``/rank/value`` request model with this app's list limit (OpenAPI maxItems)."""
    IdList = Annotated[list[Id], Field(max_length=max_items)]
    Dollars = Annotated[StrictFloat, Field(ge=0, allow_inf_nan=False)]
    Probability = Annotated[StrictFloat, Field(ge=0, le=1, allow_inf_nan=False)]

    class Candidate(BaseModel):
        """An item that may be shown: its price (dollars, >= 0) and the probability that the
        session goes on after it (in [0, 1])."""

        model_config = ConfigDict(extra="forbid")
        item_id: Id
        price: Dollars
        continuation: Probability

    class ValueRankRequest(BaseModel):
        """Give exactly one of ``user_id`` or ``history``; ``candidates`` are ranked by expected
        revenue, at most ``cap`` of them (null: no cap), never one of ``exclude_items``."""

        model_config = ConfigDict(extra="forbid")
        user_id: Id | None = None
        history: IdList | None = None
        candidates: Annotated[list[Candidate], Field(min_length=1, max_length=max_items)]
        cap: Annotated[StrictInt, Field(ge=1, le=MAX_CAP)] | None = None
        exclude_items: IdList | None = None
        normalise: Literal["catalogue", "eligible"] | None = Field(
            None, description="default: the normalisation the calibrator was fitted on")

        @model_validator(mode="after")
        def _exactly_one_source(self) -> "ValueRankRequest":
            if (self.user_id is None) == (self.history is None):
                raise PydanticCustomError("one_source", "give exactly one of user_id or history")
            return self

    return ValueRankRequest
