#!/usr/bin/env python3
"""Prints Firestore's v1 protocol as .proto files from the descriptors in Google's own Python package.

    print_protos.py OUT_DIR

Run by `scripts/gen-protos --refresh-firestore`, in a venv holding the pinned `google-cloud-firestore` from
PyPI. Its types carry the wire shape of `google/firestore/v1/*.proto` — packages, messages, fields and their
numbers, enums, oneofs, maps — but not the comments or the `google.api` annotations (REST mappings and
client-generation hints, nothing on the wire), and the package files are named after its Python modules
(`google/cloud/firestore_v1/types/document.proto`), which are mapped back to googleapis' paths here. The
Python package renames the field `from` to `from_` (a Python keyword); it gets its name back.
"""

from __future__ import annotations

import keyword
import os
import sys

from google.cloud.firestore_v1.types import firestore
from google.protobuf import descriptor_pb2, descriptor_pool

PREFIX = "google/cloud/firestore_v1/types/"
SCALARS = {
    descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE: "double",
    descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT: "float",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT64: "int64",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT64: "uint64",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT32: "int32",
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED64: "fixed64",
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED32: "fixed32",
    descriptor_pb2.FieldDescriptorProto.TYPE_BOOL: "bool",
    descriptor_pb2.FieldDescriptorProto.TYPE_STRING: "string",
    descriptor_pb2.FieldDescriptorProto.TYPE_BYTES: "bytes",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT32: "uint32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED32: "sfixed32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED64: "sfixed64",
    descriptor_pb2.FieldDescriptorProto.TYPE_SINT32: "sint32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SINT64: "sint64",
}
REPEATED = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED


def path(name: str) -> str:
    """googleapis' path of a file of the Python package."""
    return "google/firestore/v1/" + name[len(PREFIX):] if name.startswith(PREFIX) else name


def field_name(name: str) -> str:
    return name[:-1] if name.endswith("_") and keyword.iskeyword(name[:-1]) else name


def type_of(f: descriptor_pb2.FieldDescriptorProto) -> str:
    return SCALARS.get(f.type) or f.type_name  # messages and enums: fully qualified, leading dot


def field_options(f: descriptor_pb2.FieldDescriptorProto) -> str:
    opts = []
    if f.options.deprecated:
        opts.append("deprecated = true")
    return f" [{', '.join(opts)}]" if opts else ""


def print_enum(e: descriptor_pb2.EnumDescriptorProto, indent: str, out: list) -> None:
    out.append(f"{indent}enum {e.name} {{")
    if e.options.allow_alias:
        out.append(f"{indent}  option allow_alias = true;")
    for v in e.value:
        out.append(f"{indent}  {v.name} = {v.number};")
    out.append(f"{indent}}}")


def print_message(m: descriptor_pb2.DescriptorProto, scope: str, indent: str, out: list) -> None:
    full = f"{scope}.{m.name}"
    maps = {f"{full}.{n.name}": n for n in m.nested_type if n.options.map_entry}
    out.append(f"{indent}message {m.name} {{")
    inner = indent + "  "
    for e in m.enum_type:
        print_enum(e, inner, out)
    for n in m.nested_type:
        if not n.options.map_entry:
            print_message(n, full, inner, out)
    real_oneofs = {}
    for f in m.field:
        if f.HasField("oneof_index") and not f.proto3_optional:
            real_oneofs.setdefault(f.oneof_index, []).append(f)
    printed_oneofs = set()
    for f in m.field:
        if f.HasField("oneof_index") and not f.proto3_optional:
            if f.oneof_index in printed_oneofs:
                continue
            printed_oneofs.add(f.oneof_index)
            out.append(f"{inner}oneof {m.oneof_decl[f.oneof_index].name} {{")
            for g in real_oneofs[f.oneof_index]:
                out.append(f"{inner}  {type_of(g)} {field_name(g.name)} = {g.number}{field_options(g)};")
            out.append(f"{inner}}}")
            continue
        if f.label == REPEATED and f.type_name in maps:
            entry = maps[f.type_name]
            key, value = entry.field[0], entry.field[1]
            out.append(f"{inner}map<{type_of(key)}, {type_of(value)}> {field_name(f.name)} = {f.number}"
                       f"{field_options(f)};")
            continue
        # proto3 `optional` only adds presence tracking, which protobuf-c 1.4 cannot generate; the wire
        # encoding is the plain field's.
        label = "repeated " if f.label == REPEATED else ""
        out.append(f"{inner}{label}{type_of(f)} {field_name(f.name)} = {f.number}{field_options(f)};")
    out.append(f"{indent}}}")


def main() -> None:
    out_dir = sys.argv[1]
    pool = descriptor_pool.Default()
    todo, seen = [firestore.RunQueryRequest.pb().DESCRIPTOR.file.name], set()
    version = sys.argv[2] if len(sys.argv) > 2 else "?"
    while todo:
        name = todo.pop()
        if name in seen or not name.startswith(PREFIX):
            continue
        seen.add(name)
        fd = descriptor_pb2.FileDescriptorProto.FromString(pool.FindFileByName(name).serialized_pb)
        todo.extend(fd.dependency)
        out = [
            f"// {path(name)}: Firestore's v1 protocol, printed by scripts/proto-tools/print_protos.py from the",
            f"// descriptors of google-cloud-firestore {version} (PyPI; Apache-2.0, see Protos/google/LICENSE).",
            "// The wire shape only: comments and google.api annotations are not in those descriptors.",
            'syntax = "proto3";',
            "",
            f"package {fd.package};",
            "",
        ]
        for dep in fd.dependency:
            out.append(f'import "{path(dep)}";')
        if fd.dependency:
            out.append("")
        for e in fd.enum_type:
            print_enum(e, "", out)
            out.append("")
        for m in fd.message_type:
            print_message(m, "." + fd.package, "", out)
            out.append("")
        target = os.path.join(out_dir, path(name))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as f:
            f.write("\n".join(out).rstrip() + "\n")
        print(path(name))


if __name__ == "__main__":
    main()
