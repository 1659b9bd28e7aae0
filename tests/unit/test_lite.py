"""app.lite's stand-ins behave as dataclasses, functools.cached_property and typing.NamedTuple do
for everything portscope uses: each case builds the same class both ways and compares."""

from __future__ import annotations

import copy
import dataclasses
import enum
import functools
import pickle
import typing

import pytest

from app import lite


def _pair(frozen: bool, slots: bool) -> tuple[type, type]:
    def body(dc: typing.Any, fld: typing.Any) -> type:
        @dc(frozen=frozen, slots=slots)
        class Rec:
            """A record."""

            a: int
            b: str
            c: tuple[int, ...] = ()
            d: dict[str, int] = fld(default_factory=dict)
            e: str = fld(init=False, repr=False, compare=False, default="")
            f: int | None = None

            def __post_init__(self) -> None:
                object.__setattr__(self, "e", f"{self.a}:{self.b}")

            @property
            def double(self) -> int:
                return self.a * 2

        return Rec

    return body(dataclasses.dataclass, dataclasses.field), body(lite.dataclass, lite.field)


MODES = [(True, True), (True, False), (False, False)]


@pytest.mark.parametrize(("frozen", "slots"), MODES)
def test_dataclass_behaves_as_the_original(frozen: bool, slots: bool) -> None:
    real, mine = _pair(frozen, slots)
    for args, kwargs in [
        ((1, "x"), {}),
        ((2, "y", (1, 2)), {"f": 5}),
        ((), {"a": 3, "b": "z", "d": {"k": 1}}),
    ]:
        r, m = real(*args, **kwargs), mine(*args, **kwargs)
        assert repr(r) == repr(m)
        assert r.e == m.e and r.double == m.double
        assert (r == real(*args, **kwargs)) and (m == mine(*args, **kwargs))
        assert (r != real(9, "q")) and (m != mine(9, "q"))
        assert m.__eq__(r) is NotImplemented  # another class: never equal
        if frozen:
            try:
                assert hash(r) == hash(m)
            except TypeError:  # an unhashable field (the dict): both refuse
                with pytest.raises(TypeError):
                    hash(m)
            for obj in (r, m):
                with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'a'"):
                    obj.a = 5  # type: ignore[misc]
                with pytest.raises(dataclasses.FrozenInstanceError, match="cannot delete field 'b'"):
                    del obj.b  # type: ignore[misc]
        else:
            with pytest.raises(TypeError):
                hash(m)
            other = mine(*args, **kwargs)
            other.a = 7
            assert other.a == 7
        assert real.__match_args__ == mine.__match_args__
        assert [f.name for f in dataclasses.fields(r)] == [f.name for f in dataclasses.fields(m)]
        assert dataclasses.is_dataclass(m)
        r2, m2 = dataclasses.replace(r, a=11), dataclasses.replace(m, a=11)
        assert repr(r2) == repr(m2) and r2.e == m2.e == "11:" + r.b
        assert dataclasses.asdict(r) == dataclasses.asdict(m)
        assert copy.deepcopy(m) == m and repr(copy.copy(m)) == repr(m)
    assert hasattr(real, "__slots__") == hasattr(mine, "__slots__")
    if slots:
        assert real.__slots__ == mine.__slots__
        with pytest.raises(AttributeError):
            mine(1, "x").other = 1
    if not slots:
        assert mine.c == real.c == ()  # class attributes keep plain defaults
    assert ("d" in vars(mine)) == ("d" in vars(real))
    assert mine.__qualname__ == real.__qualname__


def test_dataclass_init_signature_errors_match() -> None:
    real, mine = _pair(True, True)
    for cls in (real, mine):
        with pytest.raises(TypeError):
            cls(1)  # b missing
        with pytest.raises(TypeError):
            cls(1, "x", e="no")  # init=False
        with pytest.raises(TypeError):
            cls(1, "x", zzz=1)


def test_cached_property_is_computed_once() -> None:
    calls: list[int] = []

    @lite.dataclass(frozen=True)
    class Snap:
        n: int

        @lite.cached_property
        def square(self) -> int:
            calls.append(self.n)
            return self.n * self.n

    s = Snap(4)
    assert s.square == 16 and s.square == 16
    assert calls == [4]
    assert "square" in vars(s)
    assert isinstance(Snap.__dict__["square"], lite.cached_property)

    @dataclasses.dataclass(frozen=True)
    class Real:
        n: int

        @functools.cached_property
        def square(self) -> int:
            return self.n * self.n

    r = Real(4)
    assert r.square == s.square and vars(r) == vars(s)  # both keep the value in the instance dict


def _tuples() -> tuple[type, type]:
    def body(base: typing.Any) -> type:
        class Point(base):  # type: ignore[misc, valid-type]
            """A point."""

            x: int
            y: int = 0
            label: str = "p"

            def __str__(self) -> str:
                return f"{self.x},{self.y}"

            @property
            def norm(self) -> int:
                return abs(self.x) + abs(self.y)

            @classmethod
            def origin(cls) -> typing.Any:
                return cls(0, 0)

        return Point

    return body(typing.NamedTuple), body(lite.NamedTuple)


def test_namedtuple_behaves_as_the_original() -> None:
    real, mine = _tuples()
    for args in [(1,), (1, 2), (1, 2, "q")]:
        r, m = real(*args), mine(*args)
        assert repr(r) == repr(m) and str(r) == str(m)
        assert tuple(r) == tuple(m) and r == m and hash(r) == hash(m)
        assert r.norm == m.norm and r.x == m.x and m[0] == r[0]
        assert r._asdict() == m._asdict()
        assert r._replace(y=9) == m._replace(y=9)
        assert repr(m._replace(y=9)) == repr(r._replace(y=9))
        full = tuple(r)
        assert real._make(full) == mine._make(full) and type(mine._make(full)) is mine
        assert copy.copy(m) == m and copy.deepcopy(m) == m
    assert real._fields == mine._fields
    assert real._field_defaults == mine._field_defaults
    assert real.__match_args__ == mine.__match_args__
    assert repr(real.origin()) == repr(mine.origin())
    assert real.__doc__ == mine.__doc__
    assert mine(x=3, label="z") == real(x=3, label="z")
    assert type(mine(1)).__mro__[1:] == (tuple, object)
    for cls in (real, mine):
        with pytest.raises(TypeError):
            cls()
        with pytest.raises(TypeError):
            cls._make((1,))
        with pytest.raises(ValueError, match="unexpected field names"):
            cls(1)._replace(zz=1)
        with pytest.raises(AttributeError):
            cls(1).x = 5  # type: ignore[misc]


def test_namedtuple_refuses_what_typing_refuses() -> None:
    with pytest.raises(AttributeError):

        class Bad(lite.NamedTuple):
            a: int

            def _asdict(self) -> dict[str, int]:  # type: ignore[override]
                return {}

    with pytest.raises(TypeError):

        class Bad2(lite.NamedTuple):
            a: int = 0
            b: int  # type: ignore[misc]


@lite.dataclass(frozen=True, slots=True)
class PickledRecord:
    a: int
    b: str = "x"
    c: str = lite.field(init=False, repr=False, compare=False, default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "c", self.b * 2)


class PickledTuple(lite.NamedTuple):
    ip: str
    port: int = 0


def test_records_pickle() -> None:
    rec = PickledRecord(1, "y")
    back = pickle.loads(pickle.dumps(rec))
    assert back == rec and back.c == "yy" and type(back) is PickledRecord
    tup = PickledTuple("::1", 80)
    again = pickle.loads(pickle.dumps(tup))
    assert again == tup and type(again) is PickledTuple and repr(again) == "PickledTuple(ip='::1', port=80)"


class RealRange(enum.StrEnum):
    LOW = "low"
    HIGH = "high"
    ALSO_LOW = "low"  # an alias

    @property
    def loud(self) -> str:
        return self.value.upper()

    @classmethod
    def parse(cls, text: str) -> RealRange:
        return cls(text.strip())


class LiteRange(lite.StrEnum):
    LOW = "low"
    HIGH = "high"
    ALSO_LOW = "low"

    @property
    def loud(self) -> str:
        return self.value.upper()

    @classmethod
    def parse(cls, text: str) -> LiteRange:
        return cls(text.strip())


def test_strenum_behaves_as_the_original() -> None:
    import json

    for real, mine in zip(RealRange, LiteRange, strict=True):
        assert repr(real).replace("RealRange", "X") == repr(mine).replace("LiteRange", "X")
        assert str(real) == str(mine) and f"{real}" == f"{mine}" and f"{real:>6}" == f"{mine:>6}"
        assert real == mine and real.value == mine.value and real.name == mine.name
        assert hash(real) == hash(mine) == hash(real.value)
        assert real.loud == mine.loud
        assert json.dumps(real) == json.dumps(mine) and json.dumps({"k": mine}) == json.dumps({"k": real})
        assert isinstance(mine, str) and isinstance(mine, LiteRange)
        assert copy.copy(mine) is mine and copy.deepcopy(mine) is mine
        assert pickle.loads(pickle.dumps(mine)) is mine
    assert [m.name for m in RealRange] == [m.name for m in LiteRange] == ["LOW", "HIGH"]
    assert len(RealRange) == len(LiteRange) == 2
    assert LiteRange("high") is LiteRange.HIGH and LiteRange(LiteRange.LOW) is LiteRange.LOW
    assert LiteRange["HIGH"] is LiteRange.HIGH and LiteRange.ALSO_LOW is LiteRange.LOW
    assert LiteRange.parse(" high ") is LiteRange.HIGH
    assert list(reversed(LiteRange)) == [LiteRange.HIGH, LiteRange.LOW]
    assert LiteRange.HIGH in LiteRange and RealRange.HIGH in RealRange
    assert list(LiteRange.__members__) == list(RealRange.__members__)
    for cls in (RealRange, LiteRange):
        with pytest.raises(ValueError, match="'nope' is not a valid"):
            cls("nope")
        with pytest.raises(KeyError):
            cls["nope"]
        with pytest.raises(AttributeError):
            cls.LOW = "x"  # type: ignore[misc]
    assert {LiteRange.LOW: 1}[LiteRange("low")] == 1
    assert sorted([LiteRange.LOW, LiteRange.HIGH]) == sorted([RealRange.LOW, RealRange.HIGH])
