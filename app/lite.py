"""Stand-ins for ``dataclasses.dataclass``/``field``, ``functools.cached_property``,
``typing.NamedTuple`` and ``enum.StrEnum`` that import nothing, for the modules on the CLI's start-up path.

Why: ``portscope who PORT`` should cost little more than starting Python, and importing
dataclasses costs about 17 ms (it pulls in inspect, ast, dis, tokenize, re, enum), typing 10 ms,
enum 5 ms and functools 2.5 ms on the 2-core development machine: more than the whole command may take.
A module uses them so that type checkers still see the real thing::

    TYPE_CHECKING = False
    if TYPE_CHECKING:
        from dataclasses import dataclass, field
    else:
        from app.lite import dataclass, field

What they do is what the originals do for what portscope uses, and
tests/unit/test_lite.py checks it class by class against the originals:

- :func:`dataclass` (``frozen``, ``slots``, ``init``, defaults, ``field(default_factory=...,
  init=False, repr=False, compare=False)``, ``__post_init__``): an ``__init__`` taking the same
  arguments (not compiled: slower per call than dataclasses', so a record made by the thousand
  writes its own and says ``init=False``), ``__repr__``, ``__eq__``, ``__hash__``, ``__match_args__``, and
  ``FrozenInstanceError`` on assignment. ``dataclasses.replace``, ``fields``, ``asdict`` and
  ``is_dataclass`` work on the result: its ``__dataclass_fields__`` is built (with the real
  dataclasses module) the first time something asks for it.
- :class:`NamedTuple`: class syntax, defaults, methods and properties, ``_make``, ``_replace``,
  ``_asdict``, ``_fields``, ``_field_defaults``, the same repr, pickling and copying.
- :class:`cached_property`: computed once per instance, stored in its ``__dict__``.
- :class:`once`: ``functools.lru_cache(maxsize=1)`` of a function without arguments.
- :class:`StrEnum`: ``enum.StrEnum`` (members, lookups by value and name, iteration, repr, str,
  hash, pickling).

Not supported (not used here): ``order``, ``kw_only``, ``InitVar``, ``ClassVar`` fields,
inheritance between dataclasses.
"""

from __future__ import annotations

from _collections import _tuplegetter  # the C field accessor collections.namedtuple uses

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["NamedTuple", "StrEnum", "cached_property", "dataclass", "field", "once"]

_MISSING = object()


class _Field:
    __slots__ = ("compare", "default", "default_factory", "init", "repr")

    def __init__(self, default: Any, default_factory: Any, init: bool, repr: bool, compare: bool) -> None:
        self.default = default
        self.default_factory = default_factory
        self.init = init
        self.repr = repr
        self.compare = compare


def field(
    *,
    default: Any = _MISSING,
    default_factory: Callable[[], Any] | Any = _MISSING,
    init: bool = True,
    repr: bool = True,
    compare: bool = True,
) -> Any:
    """``dataclasses.field`` for :func:`dataclass` (``default``, ``default_factory``, ``init``,
    ``repr``, ``compare``)."""
    if default is not _MISSING and default_factory is not _MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return _Field(default, default_factory, init, repr, compare)


def _frozen_error(message: str) -> Exception:
    from dataclasses import FrozenInstanceError

    return FrozenInstanceError(message)


class _LazyFields:
    """The class's ``__dataclass_fields__``, made by the real dataclasses module on first use
    (``dataclasses.replace``, ``fields``, ``asdict``; pytest's assertion diffs)."""

    def __init__(self, specs: list[tuple[str, Any, _Field]]) -> None:
        self.specs = specs

    def __get__(self, obj: object, cls: type) -> dict[str, Any]:
        import dataclasses

        made = []
        for name, annotation, f in self.specs:
            kw: dict[str, Any] = {"init": f.init, "repr": f.repr, "compare": f.compare}
            if f.default is not _MISSING:
                kw["default"] = f.default
            if f.default_factory is not _MISSING:
                kw["default_factory"] = f.default_factory
            made.append((name, annotation, dataclasses.field(**kw)))
        shadow = dataclasses.make_dataclass(cls.__name__, made, frozen=True)
        fields: dict[str, Any] = getattr(shadow, "__dataclass_fields__")  # noqa: B009
        type.__setattr__(cls, "__dataclass_fields__", fields)
        return fields


def _specs(cls: type) -> list[tuple[str, Any, _Field]]:
    annotations = cls.__dict__.get("__annotations__", {})  # noqa: RUF063 - inspect costs start-up
    specs = []
    for name, annotation in annotations.items():
        value = cls.__dict__.get(name, _MISSING)
        f = value if isinstance(value, _Field) else _Field(value, _MISSING, True, True, True)
        specs.append((name, annotation, f))
    return specs


def _make_init(cls_name: str, specs: list[tuple[str, Any, _Field]], frozen: bool, post_init: bool) -> Any:
    """The ``__init__`` dataclasses would generate (positional or keyword arguments, defaults,
    factories, ``init=False`` fields), as a closure: nothing is compiled at import (each
    ``compile`` costs about 0.1-0.2 ms of start-up). A record made by the thousand (Sock) writes
    its own ``__init__`` and says ``init=False``."""
    fields = [(name, f) for name, _a, f in specs]
    init_names = [name for name, f in fields if f.init]
    accepted = frozenset(init_names)
    n_init = len(init_names)
    setter = object.__setattr__ if frozen else setattr
    missing = _MISSING

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > n_init:
            given = len(args) + 1
            raise TypeError(
                f"{cls_name}.__init__() takes {n_init + 1} positional arguments but {given} were given"
            )
        values = dict(zip(init_names, args, strict=False))  # (fewer args than names: the rest by name)
        for key, value in kwargs.items():
            if key not in accepted:
                raise TypeError(f"{cls_name}.__init__() got an unexpected keyword argument {key!r}")
            if key in values:
                raise TypeError(f"{cls_name}.__init__() got multiple values for argument {key!r}")
            values[key] = value
        for name, f in fields:
            value = values.get(name, missing) if f.init else missing
            if value is missing:
                if f.default_factory is not missing:
                    value = f.default_factory()
                elif f.default is not missing:
                    value = f.default
                elif f.init:
                    raise TypeError(f"{cls_name}.__init__() missing 1 required positional argument: {name!r}")
                else:
                    continue  # init=False without a default: left unset, as dataclasses does
            setter(self, name, value)
        if post_init:
            self.__post_init__()

    return __init__


def _getter(names: tuple[str, ...]) -> Callable[[object], tuple[Any, ...]]:
    """A C-level getter of these attributes as a tuple (also for one or none)."""
    from _operator import attrgetter  # operator.py only re-exports it (and costs start-up)

    if len(names) >= 2:
        return attrgetter(*names)
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    return lambda obj: ()


def dataclass(
    cls: type | None = None, /, *, frozen: bool = False, slots: bool = False, init: bool = True
) -> Any:
    """``dataclasses.dataclass`` with ``frozen``, ``slots`` and ``init`` (see the module docstring)."""

    def wrap(cls: type) -> type:
        return _process(cls, frozen, slots, init)

    return wrap if cls is None else wrap(cls)


def _process(cls: type, frozen: bool, slots: bool, init: bool = True) -> type:
    specs = _specs(cls)
    names = tuple(name for name, _a, _f in specs)
    init_names = tuple(name for name, _a, f in specs if f.init)
    compared = tuple(name for name, _a, f in specs if f.compare)
    shown = tuple(name for name, _a, f in specs if f.repr)
    ns: dict[str, Any] = {}  # what to set on the class (slots: the new class's whole namespace)
    if slots:
        ns = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
        for name in names:
            ns.pop(name, None)
        ns["__slots__"] = names
    else:
        for name, _a, f in specs:  # class attributes hold plain defaults, as dataclasses leaves them
            if isinstance(cls.__dict__.get(name), _Field):
                if f.default is not _MISSING:
                    setattr(cls, name, f.default)
                else:
                    delattr(cls, name)
    key = _getter(compared)
    shown_get = _getter(shown)

    if init:
        ns["__init__"] = _make_init(cls.__name__, specs, frozen, "__post_init__" in cls.__dict__)

    def __repr__(self: Any) -> str:
        values = shown_get(self)
        inner = ", ".join(f"{n}={v!r}" for n, v in zip(shown, values, strict=True))
        return f"{type(self).__qualname__}({inner})"

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is self.__class__:
            return bool(key(self) == key(other))
        return NotImplemented

    ns["__repr__"] = __repr__
    ns["__eq__"] = __eq__
    if frozen:
        ns["__hash__"] = lambda self: hash(key(self))
        field_set = frozenset(names)

        def __setattr__(self: Any, name: str, value: Any) -> None:
            if type(self) is made or name in field_set:
                raise _frozen_error(f"cannot assign to field {name!r}")
            object.__setattr__(self, name, value)

        def __delattr__(self: Any, name: str) -> None:
            if type(self) is made or name in field_set:
                raise _frozen_error(f"cannot delete field {name!r}")
            object.__delattr__(self, name)

        ns["__setattr__"] = __setattr__
        ns["__delattr__"] = __delattr__
    else:
        ns["__hash__"] = None  # eq without frozen: unhashable, as dataclasses makes it
    ns["__match_args__"] = init_names
    ns["__dataclass_fields__"] = _LazyFields(specs)
    if slots:

        def __reduce__(self: Any) -> tuple[Any, ...]:
            state = {n: getattr(self, n) for n in names if hasattr(self, n)}
            return (_rebuild, (type(self), state))

        ns["__reduce__"] = __reduce__
    if not slots:
        made = cls
        for k, v in ns.items():
            setattr(cls, k, v)
        return cls
    made = type(cls)(cls.__name__, cls.__bases__, ns)
    made.__qualname__ = cls.__qualname__
    return made


def _rebuild(cls: type, state: dict[str, Any]) -> Any:
    """Unpickle a slots record: every field set as it was, without calling ``__init__``."""
    obj: Any = object.__new__(cls)
    for name, value in state.items():
        object.__setattr__(obj, name, value)
    return obj


class cached_property:
    """``functools.cached_property``: computed on first access, then kept in the instance's
    ``__dict__`` (so it works on frozen, non-slots records)."""

    def __init__(self, func: Callable[[Any], Any]) -> None:
        self.func = func
        self.attrname: str | None = None
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.attrname = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        name = self.attrname
        assert name is not None
        cache = instance.__dict__
        if name in cache:
            return cache[name]
        value = cache[name] = self.func(instance)
        return value


# ------------------------------------------------------------------------------------ NamedTuple


def _namedtuple(name: str, ns: dict[str, Any]) -> type:
    annotations = ns.get("__annotations__", {})
    fields = tuple(annotations)
    defaults = [ns[f] for f in fields if f in ns]
    if defaults and any(f not in ns for f in fields[len(fields) - len(defaults) :]):
        raise TypeError("non-default namedtuple field follows a default one")
    tuple_new = tuple.__new__
    args = ", ".join(fields)
    n = len(fields)
    field_defaults = dict(zip(fields[n - len(defaults) :], defaults, strict=True))

    def new(_cls: type, *values: Any, **named: Any) -> Any:
        # Not compiled (collections.namedtuple evals a lambda: the first compile of a process
        # costs about a millisecond of start-up); all positional is the fast path (Endpoint(ip, port)).
        if not named and len(values) == n:
            return tuple_new(_cls, values)
        if len(values) > n:
            raise TypeError(
                f"{name}.__new__() takes {n + 1} positional arguments but {len(values) + 1} were given"
            )
        out = list(values)
        for f in fields[len(values) :]:
            if f in named:
                out.append(named.pop(f))
            elif f in field_defaults:
                out.append(field_defaults[f])
            else:
                raise TypeError(f"{name}.__new__() missing 1 required positional argument: {f!r}")
        if named:
            key = next(iter(named))
            if key in fields:
                raise TypeError(f"{name}.__new__() got multiple values for argument {key!r}")
            raise TypeError(f"{name}.__new__() got an unexpected keyword argument {key!r}")
        return tuple_new(_cls, out)

    repr_fmt = "(" + ", ".join(f"{f}=%r" for f in fields) + ")"

    def _make(cls: type, iterable: Any) -> Any:
        result: tuple[Any, ...] = tuple_new(cls, iterable)
        if len(result) != n:
            raise TypeError(f"Expected {n} arguments, got {len(result)}")
        return result

    def _replace(self: Any, /, **kwds: Any) -> Any:
        result = self._make(map(kwds.pop, fields, self))
        if kwds:
            raise ValueError(f"Got unexpected field names: {list(kwds)!r}")
        return result

    def __repr__(self: Any) -> str:
        return self.__class__.__name__ + repr_fmt % self

    def _asdict(self: Any) -> dict[str, Any]:
        return dict(zip(self._fields, self, strict=True))

    def __getnewargs__(self: Any) -> tuple[Any, ...]:
        return tuple(self)

    body: dict[str, Any] = {
        "__doc__": ns.get("__doc__") or f"{name}({args})",
        "__slots__": (),
        "_fields": fields,
        "_field_defaults": field_defaults,
        "__new__": staticmethod(new),
        "_make": classmethod(_make),
        "_replace": _replace,
        "__repr__": __repr__,
        "_asdict": _asdict,
        "__getnewargs__": __getnewargs__,
        "__match_args__": fields,
        "__annotations__": dict(annotations),
    }
    for index, f in enumerate(fields):
        body[f] = _tuplegetter(index, f"Alias for field number {index}")
    for key, value in ns.items():
        if key in _PROHIBITED:
            raise AttributeError("Cannot overwrite NamedTuple attribute " + key)
        if key not in fields and key not in ("__annotations__", "__orig_bases__"):
            body[key] = value
    return type(name, (tuple,), body)


# As typing.NamedTuple: a class body may not define these (it may define __repr__, methods, ...).
_PROHIBITED = frozenset(
    {"__new__", "__init__", "__slots__", "__getnewargs__", "_fields", "_field_defaults"}
    | {"_make", "_replace", "_asdict", "_source"}
)


class _NamedTupleMeta(type):
    def __new__(mcls, name: str, bases: tuple[type, ...], ns: dict[str, Any]) -> Any:
        if not bases:  # NamedTuple itself
            return super().__new__(mcls, name, bases, ns)
        return _namedtuple(name, ns)


class NamedTuple(metaclass=_NamedTupleMeta):
    """``typing.NamedTuple`` class syntax: ``class Endpoint(NamedTuple): ip: str; port: int``
    makes a tuple subclass with named fields (see the module docstring)."""


class once:
    """``functools.lru_cache(maxsize=1)`` for a function without arguments: called once, the
    value kept; ``cache_clear()`` forgets it (tests)."""

    def __init__(self, func: Callable[[], Any]) -> None:
        self.func = func
        self.__doc__ = func.__doc__
        self.__name__ = getattr(func, "__name__", "once")
        self.__wrapped__ = func
        self._value: list[Any] = []

    def __call__(self) -> Any:
        if not self._value:
            self._value.append(self.func())
        return self._value[0]

    def cache_clear(self) -> None:
        self._value.clear()


# -------------------------------------------------------------------------------------- StrEnum


class _StrEnumMeta(type):
    """Makes each plain string attribute of the class body a member (see :class:`StrEnum`)."""

    _member_map_: dict[str, Any]
    _value2member_map_: dict[str, Any]

    def __new__(mcls, name: str, bases: tuple[type, ...], ns: dict[str, Any]) -> Any:
        members = {
            key: value
            for key, value in ns.items()
            if not (key.startswith("__") and key.endswith("__"))
            and not key.startswith("_")
            and type(value) is str
        }
        for key in members:
            del ns[key]
        cls: Any = super().__new__(mcls, name, bases, ns)
        by_name: dict[str, Any] = {}
        by_value: dict[str, Any] = {}
        member: Any
        for key, value in members.items():
            if value in by_value:  # an alias, as enum makes it
                member = by_value[value]
            else:
                member = str.__new__(cls, value)
                member._name_ = key
                member._value_ = value
                by_value[value] = member
            by_name[key] = member
            type.__setattr__(cls, key, member)
        type.__setattr__(cls, "_member_map_", by_name)
        type.__setattr__(cls, "_value2member_map_", by_value)
        return cls

    def __call__(cls, value: Any) -> Any:
        if type(value) is cls:
            return value
        try:
            return cls._value2member_map_[value]
        except (KeyError, TypeError):
            raise ValueError(f"{value!r} is not a valid {cls.__qualname__}") from None

    def __getitem__(cls, name: str) -> Any:
        return cls._member_map_[name]

    def __iter__(cls) -> Any:
        return iter(cls._value2member_map_.values())

    def __reversed__(cls) -> Any:
        return reversed(list(cls._value2member_map_.values()))

    def __len__(cls) -> int:
        return len(cls._value2member_map_)

    def __contains__(cls, member: object) -> bool:
        return isinstance(member, cls) and member._name_ in cls._member_map_

    @property
    def __members__(cls) -> dict[str, Any]:
        return dict(cls._member_map_)

    def __repr__(cls) -> str:
        return f"<enum {cls.__name__!r}>"

    def __setattr__(cls, name: str, value: Any) -> None:
        if name in cls.__dict__.get("_member_map_", {}):
            raise AttributeError(f"cannot reassign member {name!r}")
        super().__setattr__(name, value)


class StrEnum(str, metaclass=_StrEnumMeta):
    """``enum.StrEnum`` for the enums on the CLI's start-up path (importing enum costs about
    5 ms there): members are ``str`` instances equal to their value, found by value
    (``Proto("tcp") is Proto.TCP``) or name (``Proto["TCP"]``), iterated in definition order,
    with ``.name``/``.value``, enum's repr, str, format and hash (the value's), pickled and copied
    as themselves. Methods, properties and classmethods in the body work as in an enum."""

    _name_: str
    _value_: str

    @property
    def name(self) -> str:
        return self._name_

    @property
    def value(self) -> str:
        return self._value_

    def __repr__(self) -> str:
        return f"<{type(self).__name__}.{self._name_}: {self._value_!r}>"

    __str__ = str.__str__
    __format__ = str.__format__

    __hash__ = str.__hash__  # the value's (str comes before Enum in StrEnum's MRO)

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (type(self), (self._value_,))

    def __copy__(self) -> Any:
        return self

    def __deepcopy__(self, memo: Any) -> Any:
        return self
