"""Request and response schemas of the HTTP API (pydantic), with the app's size limits.

Ids are JSON integers or strings (never booleans or floats); how they match the model's ids is
the id rule of :mod:`seqrec.data.catalogue`, the same as in the library and the command line.
"""


from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetPydanticSchema,
    StrictBool,
    StrictInt,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema

MAX_K = 1000
MAX_ID_CHARS = 256


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
