"""Request and response schemas of the HTTP API (pydantic), with the app's size limits.

Ids are JSON integers or strings (never booleans or floats); how they match the model's ids is
the id rule of :mod:`seqrec.data.catalogue`, the same as in the library and the command line.
"""


from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictInt,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

MAX_K = 1000
MAX_ID_CHARS = 256


def _check_id(value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise PydanticCustomError("id_type", "expected an id: a JSON integer or string")
    if isinstance(value, str) and len(value) > MAX_ID_CHARS:
        raise PydanticCustomError("id_too_long", f"ids are at most {MAX_ID_CHARS} characters")
    return value


Id = Annotated[int | str, PlainValidator(_check_id), WithJsonSchema(
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
        def _exactly_one_source(self) -> Any:
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
