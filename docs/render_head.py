"""Render the default avatar's head in Blender (headless): a contact sheet of the 52 ARKit shapes, or frames
of a clip. Run by ``docs/make_contact_sheets.py``; usage inside Blender::

    blender -b --factory-startup --python docs/render_head.py -- FILE.glb OUT_DIR --shapes|--frames 0,10,..
        [--size 256] [--engine BLENDER_WORKBENCH|BLENDER_EEVEE|CYCLES]

``--shapes``: OUT_DIR/neutral.png and OUT_DIR/<arkit name>.png with that one shape key at 1 (all others 0),
and OUT_DIR/jawOpen+mouthClose.png (ARKit's mouthClose is a corrective made to be used with jawOpen).
``--frames``: OUT_DIR/frame_<n>.png with the GLB's animation at scene frame n (30 fps, glTF seconds x 30).
The camera looks at the face from its own front (wherever the head turns), slightly from the avatar's left.
"""
import math
import sys

import bpy
import numpy
from mathutils import Vector

if "bool" not in numpy.__dict__:          # Debian's Blender 3.4 glTF importer on numpy >= 1.24 (see tests)
    numpy.bool = bool

argv = sys.argv[sys.argv.index("--") + 1:]
path, out = argv[0], argv[1]
size = int(argv[argv.index("--size") + 1]) if "--size" in argv else 256
engine = argv[argv.index("--engine") + 1] if "--engine" in argv else "BLENDER_WORKBENCH"
view = argv[argv.index("--view") + 1] if "--view" in argv else "face"

bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
scene.render.fps = 30
bpy.ops.import_scene.gltf(filepath=path)
face = next(o for o in scene.objects if o.type == "MESH" and o.data.shape_keys)
arm = next(o for o in scene.objects if o.type == "ARMATURE")
keys = face.data.shape_keys.key_blocks

scene.render.engine = engine
scene.render.resolution_x = scene.render.resolution_y = size
scene.render.film_transparent = False
if engine == "BLENDER_WORKBENCH":
    sh = scene.display.shading
    sh.light = "STUDIO"
    sh.color_type = "VERTEX" if view in ("face", "side") else "MATERIAL"
    sh.show_specular_highlight = True
    sh.show_cavity = False
    scene.display.render_aa = "8"
elif engine == "CYCLES":
    scene.cycles.samples = 16
    scene.cycles.device = "CPU"
world = bpy.data.worlds.new("w")
world.color = (0.16, 0.17, 0.19)
scene.world = world

bones = arm.pose.bones


def world(name: str) -> Vector:
    return arm.matrix_world @ bones[name].head


cam_data = bpy.data.cameras.new("cam")
cam = bpy.data.objects.new("cam", cam_data)
scene.collection.objects.link(cam)
scene.camera = cam


def render(name: str) -> None:
    """Frame the face from its own front (the head may be turned or pitched): the target is between the
    eyes and the mouth, the camera on the face's forward axis (cross of the eye line and the head's up)."""
    bpy.context.view_layer.update()
    left, right, head = world("left_eye_smplhf"), world("right_eye_smplhf"), world("head")
    eyes = (left + right) / 2
    # the head's rotation from rest (pose matrix times the inverse rest matrix, armature space)
    turn = (arm.matrix_world.to_3x3() @ bones["head"].matrix.to_3x3()
            @ bones["head"].bone.matrix_local.to_3x3().inverted() @ arm.matrix_world.to_3x3().inverted())
    up = turn @ Vector((0, 0, 1))
    forward = turn @ Vector((0, -1, 0))           # glTF +Z (the avatar's front) is Blender's -Y
    side = turn @ Vector((1, 0, 0))
    if view == "face":
        cam_data.lens = 85
        target = eyes - up * 0.035
        cam.location = target + forward * 0.62 + side * 0.10 + up * 0.02
    elif view == "side":                     # neck and head from the avatar's left, to see the seam
        cam_data.lens = 50
        target = head - up * 0.06
        cam.location = target + side * 0.9 + forward * 0.25
    else:                                    # head and shoulders
        cam_data.lens = 50
        target = head - Vector((0, 0, 0.08))
        cam.location = target + forward * 1.6 + side * 0.25
    cam.rotation_euler = (target - cam.location).to_track_quat("-Z", "Y").to_euler()
    scene.render.filepath = f"{out}/{name}.png"
    bpy.ops.render.render(write_still=True)


if "--shapes" in argv:
    if arm.animation_data:
        arm.animation_data.action = None
    if face.data.shape_keys.animation_data:
        face.data.shape_keys.animation_data.action = None
    for k in keys[1:]:
        k.value = 0.0
    only = argv[argv.index("--shapes") + 1].split(",") if len(argv) > argv.index("--shapes") + 1 and not argv[argv.index("--shapes") + 1].startswith("--") else None
    render("neutral")
    for k in keys[1:]:
        if only and k.name not in only:
            continue
        k.value = 1.0
        render(k.name)
        k.value = 0.0
    if "jawOpen" in keys and "mouthClose" in keys and not only:
        keys["jawOpen"].value = keys["mouthClose"].value = 1.0      # mouthClose is made to go with jawOpen
        render("jawOpen+mouthClose")
        keys["jawOpen"].value = keys["mouthClose"].value = 0.0
if "--frames" in argv:
    for f in [int(x) for x in argv[argv.index("--frames") + 1].split(",")]:
        scene.frame_set(f)
        render(f"frame_{f:04d}")
