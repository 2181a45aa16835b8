from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FeatureEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FEATURES_NONE: _ClassVar[FeatureEncoding]
    FEATURES_FLOAT16: _ClassVar[FeatureEncoding]
    FEATURES_FLOAT32: _ClassVar[FeatureEncoding]

class RegionSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SOURCE_UNSPECIFIED: _ClassVar[RegionSource]
    SOURCE_SAM: _ClassVar[RegionSource]
    SOURCE_SLIC: _ClassVar[RegionSource]

class QueryMatch(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUERY_MATCH_POOLED: _ClassVar[QueryMatch]
    QUERY_MATCH_REGIONS: _ClassVar[QueryMatch]

class DataOrigin(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATA_ORIGIN_UNKNOWN: _ClassVar[DataOrigin]
    DATA_ORIGIN_GENERATED: _ClassVar[DataOrigin]
    DATA_ORIGIN_OWN: _ClassVar[DataOrigin]
    DATA_ORIGIN_MIXED: _ClassVar[DataOrigin]
FEATURES_NONE: FeatureEncoding
FEATURES_FLOAT16: FeatureEncoding
FEATURES_FLOAT32: FeatureEncoding
SOURCE_UNSPECIFIED: RegionSource
SOURCE_SAM: RegionSource
SOURCE_SLIC: RegionSource
QUERY_MATCH_POOLED: QueryMatch
QUERY_MATCH_REGIONS: QueryMatch
DATA_ORIGIN_UNKNOWN: DataOrigin
DATA_ORIGIN_GENERATED: DataOrigin
DATA_ORIGIN_OWN: DataOrigin
DATA_ORIGIN_MIXED: DataOrigin

class Image(_message.Message):
    __slots__ = ("data", "encoding", "width", "height")
    class Encoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ENCODED: _ClassVar[Image.Encoding]
        RGB8: _ClassVar[Image.Encoding]
    ENCODED: Image.Encoding
    RGB8: Image.Encoding
    DATA_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    encoding: Image.Encoding
    width: int
    height: int
    def __init__(self, data: _Optional[bytes] = ..., encoding: _Optional[_Union[Image.Encoding, str]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class Depth(_message.Message):
    __slots__ = ("data", "dtype", "width", "height", "scale")
    class DType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UINT16: _ClassVar[Depth.DType]
        FLOAT32: _ClassVar[Depth.DType]
    UINT16: Depth.DType
    FLOAT32: Depth.DType
    DATA_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    dtype: Depth.DType
    width: int
    height: int
    scale: float
    def __init__(self, data: _Optional[bytes] = ..., dtype: _Optional[_Union[Depth.DType, str]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., scale: _Optional[float] = ...) -> None: ...

class Intrinsics(_message.Message):
    __slots__ = ("fx", "fy", "cx", "cy", "width", "height")
    FX_FIELD_NUMBER: _ClassVar[int]
    FY_FIELD_NUMBER: _ClassVar[int]
    CX_FIELD_NUMBER: _ClassVar[int]
    CY_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    def __init__(self, fx: _Optional[float] = ..., fy: _Optional[float] = ..., cx: _Optional[float] = ..., cy: _Optional[float] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class Pose(_message.Message):
    __slots__ = ("matrix",)
    MATRIX_FIELD_NUMBER: _ClassVar[int]
    matrix: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, matrix: _Optional[_Iterable[float]] = ...) -> None: ...

class OutputOptions(_message.Message):
    __slots__ = ("features", "omit_masks")
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    OMIT_MASKS_FIELD_NUMBER: _ClassVar[int]
    features: FeatureEncoding
    omit_masks: bool
    def __init__(self, features: _Optional[_Union[FeatureEncoding, str]] = ..., omit_masks: _Optional[bool] = ...) -> None: ...

class ExtractRequest(_message.Message):
    __slots__ = ("image", "output", "depth", "intrinsics", "pose", "skip_labels")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    INTRINSICS_FIELD_NUMBER: _ClassVar[int]
    POSE_FIELD_NUMBER: _ClassVar[int]
    SKIP_LABELS_FIELD_NUMBER: _ClassVar[int]
    image: Image
    output: OutputOptions
    depth: Depth
    intrinsics: Intrinsics
    pose: Pose
    skip_labels: bool
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., output: _Optional[_Union[OutputOptions, _Mapping]] = ..., depth: _Optional[_Union[Depth, _Mapping]] = ..., intrinsics: _Optional[_Union[Intrinsics, _Mapping]] = ..., pose: _Optional[_Union[Pose, _Mapping]] = ..., skip_labels: _Optional[bool] = ...) -> None: ...

class Mask(_message.Message):
    __slots__ = ("height", "width", "counts")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    height: int
    width: int
    counts: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, height: _Optional[int] = ..., width: _Optional[int] = ..., counts: _Optional[_Iterable[int]] = ...) -> None: ...

class Box(_message.Message):
    __slots__ = ("x0", "y0", "x1", "y1")
    X0_FIELD_NUMBER: _ClassVar[int]
    Y0_FIELD_NUMBER: _ClassVar[int]
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    x0: float
    y0: float
    x1: float
    y1: float
    def __init__(self, x0: _Optional[float] = ..., y0: _Optional[float] = ..., x1: _Optional[float] = ..., y1: _Optional[float] = ...) -> None: ...

class Vec3(_message.Message):
    __slots__ = ("x", "y", "z")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    Z_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    z: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ..., z: _Optional[float] = ...) -> None: ...

class RegionGeometry(_message.Message):
    __slots__ = ("centroid", "extent", "valid_fraction", "point_count", "world")
    CENTROID_FIELD_NUMBER: _ClassVar[int]
    EXTENT_FIELD_NUMBER: _ClassVar[int]
    VALID_FRACTION_FIELD_NUMBER: _ClassVar[int]
    POINT_COUNT_FIELD_NUMBER: _ClassVar[int]
    WORLD_FIELD_NUMBER: _ClassVar[int]
    centroid: Vec3
    extent: Vec3
    valid_fraction: float
    point_count: int
    world: bool
    def __init__(self, centroid: _Optional[_Union[Vec3, _Mapping]] = ..., extent: _Optional[_Union[Vec3, _Mapping]] = ..., valid_fraction: _Optional[float] = ..., point_count: _Optional[int] = ..., world: _Optional[bool] = ...) -> None: ...

class Region(_message.Message):
    __slots__ = ("id", "mask", "box", "area", "source", "score", "features", "geometry", "label", "label_name", "label_scores", "object_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    AREA_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    GEOMETRY_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    LABEL_NAME_FIELD_NUMBER: _ClassVar[int]
    LABEL_SCORES_FIELD_NUMBER: _ClassVar[int]
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    mask: Mask
    box: Box
    area: int
    source: RegionSource
    score: float
    features: bytes
    geometry: RegionGeometry
    label: int
    label_name: str
    label_scores: _containers.RepeatedScalarFieldContainer[float]
    object_id: int
    def __init__(self, id: _Optional[int] = ..., mask: _Optional[_Union[Mask, _Mapping]] = ..., box: _Optional[_Union[Box, _Mapping]] = ..., area: _Optional[int] = ..., source: _Optional[_Union[RegionSource, str]] = ..., score: _Optional[float] = ..., features: _Optional[bytes] = ..., geometry: _Optional[_Union[RegionGeometry, _Mapping]] = ..., label: _Optional[int] = ..., label_name: _Optional[str] = ..., label_scores: _Optional[_Iterable[float]] = ..., object_id: _Optional[int] = ...) -> None: ...

class RegionSet(_message.Message):
    __slots__ = ("width", "height", "regions", "feature_dim", "feature_encoding", "profile", "masker", "backbone", "frame_index", "stage_seconds", "carry")
    class StageSecondsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    FEATURE_DIM_FIELD_NUMBER: _ClassVar[int]
    FEATURE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    MASKER_FIELD_NUMBER: _ClassVar[int]
    BACKBONE_FIELD_NUMBER: _ClassVar[int]
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    STAGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CARRY_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    regions: _containers.RepeatedCompositeFieldContainer[Region]
    feature_dim: int
    feature_encoding: FeatureEncoding
    profile: str
    masker: str
    backbone: str
    frame_index: int
    stage_seconds: _containers.ScalarMap[str, float]
    carry: CarryState
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ..., regions: _Optional[_Iterable[_Union[Region, _Mapping]]] = ..., feature_dim: _Optional[int] = ..., feature_encoding: _Optional[_Union[FeatureEncoding, str]] = ..., profile: _Optional[str] = ..., masker: _Optional[str] = ..., backbone: _Optional[str] = ..., frame_index: _Optional[int] = ..., stage_seconds: _Optional[_Mapping[str, float]] = ..., carry: _Optional[_Union[CarryState, _Mapping]] = ...) -> None: ...

class CarryOptions(_message.Message):
    __slots__ = ("keyframe_every", "min_coverage")
    KEYFRAME_EVERY_FIELD_NUMBER: _ClassVar[int]
    MIN_COVERAGE_FIELD_NUMBER: _ClassVar[int]
    keyframe_every: int
    min_coverage: float
    def __init__(self, keyframe_every: _Optional[int] = ..., min_coverage: _Optional[float] = ...) -> None: ...

class CarryState(_message.Message):
    __slots__ = ("keyframe", "keyframe_index", "coverage", "reason")
    KEYFRAME_FIELD_NUMBER: _ClassVar[int]
    KEYFRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    keyframe: bool
    keyframe_index: int
    coverage: float
    reason: str
    def __init__(self, keyframe: _Optional[bool] = ..., keyframe_index: _Optional[int] = ..., coverage: _Optional[float] = ..., reason: _Optional[str] = ...) -> None: ...

class FrameError(_message.Message):
    __slots__ = ("code", "field", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    field: str
    message: str
    def __init__(self, code: _Optional[int] = ..., field: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ClassScore(_message.Message):
    __slots__ = ("id", "name", "score")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    score: float
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class VideoOptions(_message.Message):
    __slots__ = ("window_step", "window_span", "carry", "live", "window_seconds")
    WINDOW_STEP_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SPAN_FIELD_NUMBER: _ClassVar[int]
    CARRY_FIELD_NUMBER: _ClassVar[int]
    LIVE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    window_step: int
    window_span: int
    carry: CarryOptions
    live: bool
    window_seconds: float
    def __init__(self, window_step: _Optional[int] = ..., window_span: _Optional[int] = ..., carry: _Optional[_Union[CarryOptions, _Mapping]] = ..., live: _Optional[bool] = ..., window_seconds: _Optional[float] = ...) -> None: ...

class VideoFrame(_message.Message):
    __slots__ = ("image", "index", "time", "output", "options")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    image: Image
    index: int
    time: float
    output: OutputOptions
    options: VideoOptions
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., index: _Optional[int] = ..., time: _Optional[float] = ..., output: _Optional[_Union[OutputOptions, _Mapping]] = ..., options: _Optional[_Union[VideoOptions, _Mapping]] = ...) -> None: ...

class ActivityWindow(_message.Message):
    __slots__ = ("start_frame", "end_frame", "frame_indices", "scores", "start_time", "end_time")
    START_FRAME_FIELD_NUMBER: _ClassVar[int]
    END_FRAME_FIELD_NUMBER: _ClassVar[int]
    FRAME_INDICES_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    start_frame: int
    end_frame: int
    frame_indices: _containers.RepeatedScalarFieldContainer[int]
    scores: _containers.RepeatedCompositeFieldContainer[ClassScore]
    start_time: float
    end_time: float
    def __init__(self, start_frame: _Optional[int] = ..., end_frame: _Optional[int] = ..., frame_indices: _Optional[_Iterable[int]] = ..., scores: _Optional[_Iterable[_Union[ClassScore, _Mapping]]] = ..., start_time: _Optional[float] = ..., end_time: _Optional[float] = ...) -> None: ...

class VideoUpdate(_message.Message):
    __slots__ = ("frame_index", "regions", "error", "windows", "server_seconds", "skipped")
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    SERVER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    frame_index: int
    regions: RegionSet
    error: FrameError
    windows: _containers.RepeatedCompositeFieldContainer[ActivityWindow]
    server_seconds: float
    skipped: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, frame_index: _Optional[int] = ..., regions: _Optional[_Union[RegionSet, _Mapping]] = ..., error: _Optional[_Union[FrameError, _Mapping]] = ..., windows: _Optional[_Iterable[_Union[ActivityWindow, _Mapping]]] = ..., server_seconds: _Optional[float] = ..., skipped: _Optional[_Iterable[int]] = ...) -> None: ...

class SceneOptions(_message.Message):
    __slots__ = ("scene_id", "voxel_size", "return_ply", "return_label_maps", "max_depth", "carry", "live", "objects")
    SCENE_ID_FIELD_NUMBER: _ClassVar[int]
    VOXEL_SIZE_FIELD_NUMBER: _ClassVar[int]
    RETURN_PLY_FIELD_NUMBER: _ClassVar[int]
    RETURN_LABEL_MAPS_FIELD_NUMBER: _ClassVar[int]
    MAX_DEPTH_FIELD_NUMBER: _ClassVar[int]
    CARRY_FIELD_NUMBER: _ClassVar[int]
    LIVE_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    scene_id: str
    voxel_size: float
    return_ply: bool
    return_label_maps: bool
    max_depth: float
    carry: CarryOptions
    live: bool
    objects: bool
    def __init__(self, scene_id: _Optional[str] = ..., voxel_size: _Optional[float] = ..., return_ply: _Optional[bool] = ..., return_label_maps: _Optional[bool] = ..., max_depth: _Optional[float] = ..., carry: _Optional[_Union[CarryOptions, _Mapping]] = ..., live: _Optional[bool] = ..., objects: _Optional[bool] = ...) -> None: ...

class SceneFrame(_message.Message):
    __slots__ = ("color", "depth", "intrinsics", "pose", "index", "time", "output", "options")
    COLOR_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    INTRINSICS_FIELD_NUMBER: _ClassVar[int]
    POSE_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    color: Image
    depth: Depth
    intrinsics: Intrinsics
    pose: Pose
    index: int
    time: float
    output: OutputOptions
    options: SceneOptions
    def __init__(self, color: _Optional[_Union[Image, _Mapping]] = ..., depth: _Optional[_Union[Depth, _Mapping]] = ..., intrinsics: _Optional[_Union[Intrinsics, _Mapping]] = ..., pose: _Optional[_Union[Pose, _Mapping]] = ..., index: _Optional[int] = ..., time: _Optional[float] = ..., output: _Optional[_Union[OutputOptions, _Mapping]] = ..., options: _Optional[_Union[SceneOptions, _Mapping]] = ...) -> None: ...

class RefinedFrame(_message.Message):
    __slots__ = ("frame_index", "region_labels", "label_map_png", "region_object_ids")
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    REGION_LABELS_FIELD_NUMBER: _ClassVar[int]
    LABEL_MAP_PNG_FIELD_NUMBER: _ClassVar[int]
    REGION_OBJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    frame_index: int
    region_labels: _containers.RepeatedScalarFieldContainer[int]
    label_map_png: bytes
    region_object_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, frame_index: _Optional[int] = ..., region_labels: _Optional[_Iterable[int]] = ..., label_map_png: _Optional[bytes] = ..., region_object_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class SceneObject(_message.Message):
    __slots__ = ("id", "label", "label_name", "score", "confidence", "centroid", "box_min", "box_max", "point_count", "frames", "best_frame", "best_box")
    ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    LABEL_NAME_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    CENTROID_FIELD_NUMBER: _ClassVar[int]
    BOX_MIN_FIELD_NUMBER: _ClassVar[int]
    BOX_MAX_FIELD_NUMBER: _ClassVar[int]
    POINT_COUNT_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    BEST_FRAME_FIELD_NUMBER: _ClassVar[int]
    BEST_BOX_FIELD_NUMBER: _ClassVar[int]
    id: int
    label: int
    label_name: str
    score: float
    confidence: float
    centroid: Vec3
    box_min: Vec3
    box_max: Vec3
    point_count: int
    frames: int
    best_frame: int
    best_box: Box
    def __init__(self, id: _Optional[int] = ..., label: _Optional[int] = ..., label_name: _Optional[str] = ..., score: _Optional[float] = ..., confidence: _Optional[float] = ..., centroid: _Optional[_Union[Vec3, _Mapping]] = ..., box_min: _Optional[_Union[Vec3, _Mapping]] = ..., box_max: _Optional[_Union[Vec3, _Mapping]] = ..., point_count: _Optional[int] = ..., frames: _Optional[int] = ..., best_frame: _Optional[int] = ..., best_box: _Optional[_Union[Box, _Mapping]] = ...) -> None: ...

class SceneSummary(_message.Message):
    __slots__ = ("scene_id", "frames", "frames_failed", "regions", "frames_without_pose", "frames_without_depth", "fused_points", "ply", "label_names", "seconds", "ply_voxel_size", "objects", "objects_dropped", "frames_without_objects")
    SCENE_ID_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FAILED_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_WITHOUT_POSE_FIELD_NUMBER: _ClassVar[int]
    FRAMES_WITHOUT_DEPTH_FIELD_NUMBER: _ClassVar[int]
    FUSED_POINTS_FIELD_NUMBER: _ClassVar[int]
    PLY_FIELD_NUMBER: _ClassVar[int]
    LABEL_NAMES_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    PLY_VOXEL_SIZE_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_DROPPED_FIELD_NUMBER: _ClassVar[int]
    FRAMES_WITHOUT_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    scene_id: str
    frames: int
    frames_failed: int
    regions: int
    frames_without_pose: int
    frames_without_depth: int
    fused_points: int
    ply: bytes
    label_names: _containers.RepeatedScalarFieldContainer[str]
    seconds: float
    ply_voxel_size: float
    objects: _containers.RepeatedCompositeFieldContainer[SceneObject]
    objects_dropped: int
    frames_without_objects: int
    def __init__(self, scene_id: _Optional[str] = ..., frames: _Optional[int] = ..., frames_failed: _Optional[int] = ..., regions: _Optional[int] = ..., frames_without_pose: _Optional[int] = ..., frames_without_depth: _Optional[int] = ..., fused_points: _Optional[int] = ..., ply: _Optional[bytes] = ..., label_names: _Optional[_Iterable[str]] = ..., seconds: _Optional[float] = ..., ply_voxel_size: _Optional[float] = ..., objects: _Optional[_Iterable[_Union[SceneObject, _Mapping]]] = ..., objects_dropped: _Optional[int] = ..., frames_without_objects: _Optional[int] = ...) -> None: ...

class SceneUpdate(_message.Message):
    __slots__ = ("frame_index", "regions", "error", "label_map_png", "refined", "summary", "server_seconds", "objects_reason")
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    LABEL_MAP_PNG_FIELD_NUMBER: _ClassVar[int]
    REFINED_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    SERVER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_REASON_FIELD_NUMBER: _ClassVar[int]
    frame_index: int
    regions: RegionSet
    error: FrameError
    label_map_png: bytes
    refined: RefinedFrame
    summary: SceneSummary
    server_seconds: float
    objects_reason: str
    def __init__(self, frame_index: _Optional[int] = ..., regions: _Optional[_Union[RegionSet, _Mapping]] = ..., error: _Optional[_Union[FrameError, _Mapping]] = ..., label_map_png: _Optional[bytes] = ..., refined: _Optional[_Union[RefinedFrame, _Mapping]] = ..., summary: _Optional[_Union[SceneSummary, _Mapping]] = ..., server_seconds: _Optional[float] = ..., objects_reason: _Optional[str] = ...) -> None: ...

class IndexRequest(_message.Message):
    __slots__ = ("image_id", "image", "metadata", "replace", "remove")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    image: Image
    metadata: _containers.ScalarMap[str, str]
    replace: bool
    remove: bool
    def __init__(self, image_id: _Optional[str] = ..., image: _Optional[_Union[Image, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., replace: _Optional[bool] = ..., remove: _Optional[bool] = ...) -> None: ...

class ImageError(_message.Message):
    __slots__ = ("image_id", "code", "field", "message")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    code: int
    field: str
    message: str
    def __init__(self, image_id: _Optional[str] = ..., code: _Optional[int] = ..., field: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class IndexSummary(_message.Message):
    __slots__ = ("received", "indexed", "skipped", "removed", "regions", "errors", "total_images", "total_regions")
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    INDEXED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_IMAGES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_REGIONS_FIELD_NUMBER: _ClassVar[int]
    received: int
    indexed: int
    skipped: int
    removed: int
    regions: int
    errors: _containers.RepeatedCompositeFieldContainer[ImageError]
    total_images: int
    total_regions: int
    def __init__(self, received: _Optional[int] = ..., indexed: _Optional[int] = ..., skipped: _Optional[int] = ..., removed: _Optional[int] = ..., regions: _Optional[int] = ..., errors: _Optional[_Iterable[_Union[ImageError, _Mapping]]] = ..., total_images: _Optional[int] = ..., total_regions: _Optional[int] = ...) -> None: ...

class MaskQuery(_message.Message):
    __slots__ = ("image", "mask", "mask_image", "match")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    MASK_IMAGE_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    image: Image
    mask: Mask
    mask_image: Image
    match: QueryMatch
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., mask: _Optional[_Union[Mask, _Mapping]] = ..., mask_image: _Optional[_Union[Image, _Mapping]] = ..., match: _Optional[_Union[QueryMatch, str]] = ...) -> None: ...

class BoxQuery(_message.Message):
    __slots__ = ("image", "box", "match")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    image: Image
    box: Box
    match: QueryMatch
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., box: _Optional[_Union[Box, _Mapping]] = ..., match: _Optional[_Union[QueryMatch, str]] = ...) -> None: ...

class RegionRef(_message.Message):
    __slots__ = ("image_id", "region_id")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_ID_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    region_id: int
    def __init__(self, image_id: _Optional[str] = ..., region_id: _Optional[int] = ...) -> None: ...

class VectorQuery(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class LinearQuery(_message.Message):
    __slots__ = ("weights", "bias")
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    BIAS_FIELD_NUMBER: _ClassVar[int]
    weights: _containers.RepeatedScalarFieldContainer[float]
    bias: float
    def __init__(self, weights: _Optional[_Iterable[float]] = ..., bias: _Optional[float] = ...) -> None: ...

class ExamplesQuery(_message.Message):
    __slots__ = ("positives", "negatives")
    POSITIVES_FIELD_NUMBER: _ClassVar[int]
    NEGATIVES_FIELD_NUMBER: _ClassVar[int]
    positives: _containers.RepeatedCompositeFieldContainer[RegionRef]
    negatives: int
    def __init__(self, positives: _Optional[_Iterable[_Union[RegionRef, _Mapping]]] = ..., negatives: _Optional[int] = ...) -> None: ...

class SearchFilter(_message.Message):
    __slots__ = ("image_id_prefix", "metadata", "exclude_image_ids")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    IMAGE_ID_PREFIX_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_IMAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    image_id_prefix: str
    metadata: _containers.ScalarMap[str, str]
    exclude_image_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, image_id_prefix: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., exclude_image_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("mask", "box", "region", "vector", "linear", "examples", "top_k", "regions_per_image", "filter", "include_masks", "query_expansion")
    MASK_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    LINEAR_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    REGIONS_PER_IMAGE_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_MASKS_FIELD_NUMBER: _ClassVar[int]
    QUERY_EXPANSION_FIELD_NUMBER: _ClassVar[int]
    mask: MaskQuery
    box: BoxQuery
    region: RegionRef
    vector: VectorQuery
    linear: LinearQuery
    examples: ExamplesQuery
    top_k: int
    regions_per_image: int
    filter: SearchFilter
    include_masks: bool
    query_expansion: int
    def __init__(self, mask: _Optional[_Union[MaskQuery, _Mapping]] = ..., box: _Optional[_Union[BoxQuery, _Mapping]] = ..., region: _Optional[_Union[RegionRef, _Mapping]] = ..., vector: _Optional[_Union[VectorQuery, _Mapping]] = ..., linear: _Optional[_Union[LinearQuery, _Mapping]] = ..., examples: _Optional[_Union[ExamplesQuery, _Mapping]] = ..., top_k: _Optional[int] = ..., regions_per_image: _Optional[int] = ..., filter: _Optional[_Union[SearchFilter, _Mapping]] = ..., include_masks: _Optional[bool] = ..., query_expansion: _Optional[int] = ...) -> None: ...

class RegionHit(_message.Message):
    __slots__ = ("region_id", "score", "mask", "box")
    REGION_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    region_id: int
    score: float
    mask: Mask
    box: Box
    def __init__(self, region_id: _Optional[int] = ..., score: _Optional[float] = ..., mask: _Optional[_Union[Mask, _Mapping]] = ..., box: _Optional[_Union[Box, _Mapping]] = ...) -> None: ...

class SearchHit(_message.Message):
    __slots__ = ("image_id", "score", "regions", "metadata", "width", "height")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    score: float
    regions: _containers.RepeatedCompositeFieldContainer[RegionHit]
    metadata: _containers.ScalarMap[str, str]
    width: int
    height: int
    def __init__(self, image_id: _Optional[str] = ..., score: _Optional[float] = ..., regions: _Optional[_Iterable[_Union[RegionHit, _Mapping]]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits", "searched_images", "searched_regions", "seconds")
    HITS_FIELD_NUMBER: _ClassVar[int]
    SEARCHED_IMAGES_FIELD_NUMBER: _ClassVar[int]
    SEARCHED_REGIONS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[SearchHit]
    searched_images: int
    searched_regions: int
    seconds: float
    def __init__(self, hits: _Optional[_Iterable[_Union[SearchHit, _Mapping]]] = ..., searched_images: _Optional[int] = ..., searched_regions: _Optional[int] = ..., seconds: _Optional[float] = ...) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("role", "name", "feature_dim", "weights")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FEATURE_DIM_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    role: str
    name: str
    feature_dim: int
    weights: str
    def __init__(self, role: _Optional[str] = ..., name: _Optional[str] = ..., feature_dim: _Optional[int] = ..., weights: _Optional[str] = ...) -> None: ...

class HeadInfo(_message.Message):
    __slots__ = ("kind", "name", "class_ids", "class_names", "window", "trained_on")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CLASS_IDS_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    TRAINED_ON_FIELD_NUMBER: _ClassVar[int]
    kind: str
    name: str
    class_ids: _containers.RepeatedScalarFieldContainer[int]
    class_names: _containers.RepeatedScalarFieldContainer[str]
    window: int
    trained_on: _containers.RepeatedCompositeFieldContainer[TrainedOn]
    def __init__(self, kind: _Optional[str] = ..., name: _Optional[str] = ..., class_ids: _Optional[_Iterable[int]] = ..., class_names: _Optional[_Iterable[str]] = ..., window: _Optional[int] = ..., trained_on: _Optional[_Iterable[_Union[TrainedOn, _Mapping]]] = ...) -> None: ...

class TrainedOn(_message.Message):
    __slots__ = ("head", "dataset", "origin", "items", "frames", "clips", "profile", "held_out_metric", "held_out_score", "held_out_on", "summary")
    HEAD_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    CLIPS_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    HELD_OUT_METRIC_FIELD_NUMBER: _ClassVar[int]
    HELD_OUT_SCORE_FIELD_NUMBER: _ClassVar[int]
    HELD_OUT_ON_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    head: str
    dataset: str
    origin: DataOrigin
    items: int
    frames: int
    clips: int
    profile: str
    held_out_metric: str
    held_out_score: float
    held_out_on: str
    summary: str
    def __init__(self, head: _Optional[str] = ..., dataset: _Optional[str] = ..., origin: _Optional[_Union[DataOrigin, str]] = ..., items: _Optional[int] = ..., frames: _Optional[int] = ..., clips: _Optional[int] = ..., profile: _Optional[str] = ..., held_out_metric: _Optional[str] = ..., held_out_score: _Optional[float] = ..., held_out_on: _Optional[str] = ..., summary: _Optional[str] = ...) -> None: ...

class ServerInfo(_message.Message):
    __slots__ = ("version", "profile", "profile_note", "models", "feature_dim", "heads", "max_message_bytes", "max_pixels", "queue_size", "index_images", "index_regions", "index_normaliser", "state", "state_detail", "workers", "max_streams")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    PROFILE_NOTE_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    FEATURE_DIM_FIELD_NUMBER: _ClassVar[int]
    HEADS_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_PIXELS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_SIZE_FIELD_NUMBER: _ClassVar[int]
    INDEX_IMAGES_FIELD_NUMBER: _ClassVar[int]
    INDEX_REGIONS_FIELD_NUMBER: _ClassVar[int]
    INDEX_NORMALISER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_DETAIL_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    MAX_STREAMS_FIELD_NUMBER: _ClassVar[int]
    version: str
    profile: str
    profile_note: str
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    feature_dim: int
    heads: _containers.RepeatedCompositeFieldContainer[HeadInfo]
    max_message_bytes: int
    max_pixels: int
    queue_size: int
    index_images: int
    index_regions: int
    index_normaliser: str
    state: str
    state_detail: str
    workers: int
    max_streams: int
    def __init__(self, version: _Optional[str] = ..., profile: _Optional[str] = ..., profile_note: _Optional[str] = ..., models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., feature_dim: _Optional[int] = ..., heads: _Optional[_Iterable[_Union[HeadInfo, _Mapping]]] = ..., max_message_bytes: _Optional[int] = ..., max_pixels: _Optional[int] = ..., queue_size: _Optional[int] = ..., index_images: _Optional[int] = ..., index_regions: _Optional[int] = ..., index_normaliser: _Optional[str] = ..., state: _Optional[str] = ..., state_detail: _Optional[str] = ..., workers: _Optional[int] = ..., max_streams: _Optional[int] = ...) -> None: ...
