"""Optional photoreal renderer: portrait image + motion -> 512x768 talking-portrait video.

Modules: :mod:`generator.face_keypoints` ((ARKit weights, head rotation) -> canonical 3D face landmarks, a
ridge model fitted on tracked talking videos), :mod:`generator.driving` (portrait crop and face detection,
driving keypoints), :mod:`generator.warp` (the warp engine: piecewise-affine warp, mouth interior),
:mod:`generator.render` (``chatanyone render``: engines, H.264/AAC encoding), :mod:`generator.metrics`
(PSNR, SSIM, lip sync measured back with the face tracker), :mod:`generator.neural` (the neural engine:
appearance encoder, dense motion from explicit + implicit keypoints, hand control images from
:mod:`generator.hands`, face refinement) and :mod:`generator.train_neural` (self-reenactment training).
Nothing outside ``generator/`` imports it.
"""
