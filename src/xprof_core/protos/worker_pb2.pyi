from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Shard(_message.Message):
    __slots__ = ("index", "count")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    index: int
    count: int
    def __init__(self, index: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...

class MapRequest(_message.Message):
    __slots__ = ("tool", "host_url", "params", "shard", "request_id")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TOOL_FIELD_NUMBER: _ClassVar[int]
    HOST_URL_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    tool: str
    host_url: str
    params: _containers.ScalarMap[str, str]
    shard: Shard
    request_id: str
    def __init__(self, tool: _Optional[str] = ..., host_url: _Optional[str] = ..., params: _Optional[_Mapping[str, str]] = ..., shard: _Optional[_Union[Shard, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class MapTimings(_message.Message):
    __slots__ = ("queue_s", "read_s", "decode_s", "map_s", "encode_s", "bytes_read")
    QUEUE_S_FIELD_NUMBER: _ClassVar[int]
    READ_S_FIELD_NUMBER: _ClassVar[int]
    DECODE_S_FIELD_NUMBER: _ClassVar[int]
    MAP_S_FIELD_NUMBER: _ClassVar[int]
    ENCODE_S_FIELD_NUMBER: _ClassVar[int]
    BYTES_READ_FIELD_NUMBER: _ClassVar[int]
    queue_s: float
    read_s: float
    decode_s: float
    map_s: float
    encode_s: float
    bytes_read: int
    def __init__(self, queue_s: _Optional[float] = ..., read_s: _Optional[float] = ..., decode_s: _Optional[float] = ..., map_s: _Optional[float] = ..., encode_s: _Optional[float] = ..., bytes_read: _Optional[int] = ...) -> None: ...

class MapChunk(_message.Message):
    __slots__ = ("data", "last", "worker_id", "timings", "total_bytes")
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    last: bool
    worker_id: str
    timings: MapTimings
    total_bytes: int
    def __init__(self, data: _Optional[bytes] = ..., last: _Optional[bool] = ..., worker_id: _Optional[str] = ..., timings: _Optional[_Union[MapTimings, _Mapping]] = ..., total_bytes: _Optional[int] = ...) -> None: ...
