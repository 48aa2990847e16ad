"""Run inside Blender: import one GLB (glTF importer) or BVH (BVH importer) and dump what Blender made of it.

Usage (from tests/exporters/test_blender.py)::

    blender -b --factory-startup --python-exit-code 2 --python blender_import.py -- \
        FILE.glb|FILE.bvh OUT.json --fps 30 --frames 0,17,80

Writes one JSON object to OUT.json, everything in Blender's own terms (the test converts):

* ``blender``: version string; ``importer``: "gltf" or "bvh"; ``scene_fps``.
* ``armature``: ``matrix_world`` (4x4 row-major) of the armature object; ``bones``: for every bone its
  ``parent``, ``head_local`` (rest head, armature space) and ``matrix_local`` (rest, armature space).
* ``action``: ``frame_range`` of the armature's action; ``rotation_bones`` / ``location_bones``: bones with
  rotation / location F-curves; ``rotation_modes``: each pose bone's ``rotation_mode``.
* ``pose``: ``{frame: {bone: pose_bone.matrix}}`` (posed, armature space) at each requested frame.
* ``shape_keys`` (GLB only): the mesh with shape keys, its key names (without "Basis"), the shape-key
  action's frame range, and ``{frame: [value per key]}``.

Compatibility shims for Debian bookworm's Blender 3.4.1, which runs its add-ons on the system Python 3.11
and numpy 1.24 (Blender 3.4 itself shipped Python 3.10 and numpy 1.23):

* the glTF importer uses ``np.bool`` (removed in numpy 1.24; glTF-Blender-IO #1844, fixed by PR #1831 in
  Blender 3.5 and not backported): restore the alias ``np.bool = bool``, which is what the fix writes;
* the BVH importer opens the file with mode ``'rU'`` (the ``U`` flag was removed in Python 3.11): give
  its module an ``open`` that drops the ``U``.

Both only restore what the importer was written against; neither changes how it reads a file.
"""
import builtins
import json
import sys

import bpy


def _matrix(m) -> list:
    return [list(row) for row in m]


def _shim_numpy_bool() -> None:
    import numpy
    if "bool" not in numpy.__dict__:
        numpy.bool = bool


def _shim_bvh_open() -> None:
    import io_anim_bvh.import_bvh as import_bvh
    if sys.version_info >= (3, 11):
        import_bvh.open = lambda file, mode="r", *a, **k: builtins.open(file, mode.replace("U", ""), *a, **k)


def _import(path: str, fps: int) -> str:
    scene = bpy.context.scene
    if path.lower().endswith((".glb", ".gltf")):
        _shim_numpy_bool()
        scene.render.fps, scene.render.fps_base = fps, 1.0   # the glTF importer keys at seconds * scene fps
        bpy.ops.import_scene.gltf(filepath=path)
        return "gltf"
    if path.lower().endswith(".bvh"):
        _shim_bvh_open()
        # Defaults (forward -Z, up Y, rotation mode NATIVE, first frame 1); metres from our centimetres.
        bpy.ops.import_anim.bvh(filepath=path, global_scale=0.01, update_scene_fps=True)
        return "bvh"
    raise SystemExit(f"unknown file type: {path}")


def main(argv: list[str]) -> None:
    path, out = argv[0], argv[1]
    fps = int(argv[argv.index("--fps") + 1]) if "--fps" in argv else 30
    frames = [int(f) for f in argv[argv.index("--frames") + 1].split(",")] if "--frames" in argv else []
    bpy.ops.wm.read_factory_settings(use_empty=True)
    importer = _import(path, fps)
    scene = bpy.context.scene

    arm = next(o for o in scene.objects if o.type == "ARMATURE")
    action = arm.animation_data.action
    rot_bones, loc_bones = set(), set()
    for fc in action.fcurves:
        if fc.data_path.startswith('pose.bones["'):
            bone, prop = fc.data_path[len('pose.bones["'):].split('"].')
            (rot_bones if prop.startswith("rotation") else loc_bones if prop == "location" else set()).add(bone)
    result = {
        "blender": bpy.app.version_string, "importer": importer,
        "scene_fps": scene.render.fps / scene.render.fps_base,
        "armature": {"name": arm.name, "matrix_world": _matrix(arm.matrix_world)},
        "bones": {b.name: {"parent": b.parent.name if b.parent else None, "head_local": list(b.head_local),
                           "matrix_local": _matrix(b.matrix_local)} for b in arm.data.bones},
        "action": {"frame_range": list(action.frame_range), "rotation_bones": sorted(rot_bones),
                   "location_bones": sorted(loc_bones),
                   "rotation_modes": {p.name: p.rotation_mode for p in arm.pose.bones}},
        "pose": {},
    }
    keyed = next((o for o in scene.objects if o.type == "MESH" and o.data.shape_keys), None)
    if keyed is not None:
        keys = keyed.data.shape_keys
        sk_action = keys.animation_data.action if keys.animation_data else None
        result["shape_keys"] = {"mesh": keyed.name, "names": [k.name for k in keys.key_blocks[1:]],
                                "frame_range": list(sk_action.frame_range) if sk_action else None,
                                "values": {}}
    for f in frames:
        scene.frame_set(f)
        result["pose"][str(f)] = {p.name: _matrix(p.matrix) for p in arm.pose.bones}
        if keyed is not None:
            result["shape_keys"]["values"][str(f)] = [k.value for k in keyed.data.shape_keys.key_blocks[1:]]
    with open(out, "w") as fh:
        json.dump(result, fh)


if __name__ == "__main__":
    main(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else [])
