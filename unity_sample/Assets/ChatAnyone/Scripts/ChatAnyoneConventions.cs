// ChatAnyone Bridge — Unity sample (Apache-2.0, the project's licence); see unity_sample/README.md.
using System;
using System.Collections.Generic;
using UnityEngine;

namespace ChatAnyone
{
    /// <summary>
    /// The conventions of the ChatAnyone stream, mirrored from the Python package's
    /// <c>motion/conventions.py</c> (the one place they are defined; a test checks this copy against it).
    ///
    /// Axes: the stream is right-handed, +Y up, the avatar facing +Z, metres (SMPL-X and glTF). Unity is
    /// left-handed, +Y up, +Z forward. The mirror X -> -X takes one to the other, so a rotation
    /// (x, y, z, w) becomes (x, -y, -z, w) and a position (x, y, z) becomes (-x, y, z).
    /// </summary>
    public static class ChatAnyoneConventions
    {
        /// <summary>SMPL-X joint name (the header's <c>joint_names</c>) -> Unity <see cref="HumanBodyBones"/> name.</summary>
        public static readonly IDictionary<string, string> SmplxToUnity = BuildSmplxToUnity();

        static Dictionary<string, string> BuildSmplxToUnity()
        {
            var map = new Dictionary<string, string>(StringComparer.Ordinal)
            {
                { "pelvis", "Hips" }, { "left_hip", "LeftUpperLeg" }, { "right_hip", "RightUpperLeg" },
                { "spine1", "Spine" }, { "left_knee", "LeftLowerLeg" }, { "right_knee", "RightLowerLeg" },
                { "spine2", "Chest" }, { "left_ankle", "LeftFoot" }, { "right_ankle", "RightFoot" },
                { "spine3", "UpperChest" }, { "left_foot", "LeftToes" }, { "right_foot", "RightToes" },
                { "neck", "Neck" }, { "left_collar", "LeftShoulder" }, { "right_collar", "RightShoulder" },
                { "head", "Head" }, { "left_shoulder", "LeftUpperArm" }, { "right_shoulder", "RightUpperArm" },
                { "left_elbow", "LeftLowerArm" }, { "right_elbow", "RightLowerArm" },
                { "left_wrist", "LeftHand" }, { "right_wrist", "RightHand" }, { "jaw", "Jaw" },
                { "left_eye_smplhf", "LeftEye" }, { "right_eye_smplhf", "RightEye" },
            };
            // Fingers: SMPL-X (MANO) index/middle/pinky/ring/thumb 1..3 -> Unity Index/Middle/Little/Ring/Thumb
            // Proximal/Intermediate/Distal.
            string[] smplxFingers = { "index", "middle", "pinky", "ring", "thumb" };
            string[] unityFingers = { "Index", "Middle", "Little", "Ring", "Thumb" };
            string[] segments = { "Proximal", "Intermediate", "Distal" };
            foreach (var side in new[] { "left", "right" })
            {
                string unitySide = side == "left" ? "Left" : "Right";
                for (int f = 0; f < smplxFingers.Length; f++)
                {
                    for (int k = 0; k < 3; k++)
                    {
                        map.Add(side + "_" + smplxFingers[f] + (k + 1), unitySide + unityFingers[f] + segments[k]);
                    }
                }
            }
            return map;
        }

        /// <summary>The Unity bone of an SMPL-X joint name; false for names without one.</summary>
        public static bool TryGetUnityBone(string smplxJointName, out HumanBodyBones bone)
        {
            bone = HumanBodyBones.Hips;
            string unityName;
            if (smplxJointName == null || !SmplxToUnity.TryGetValue(smplxJointName, out unityName))
            {
                return false;
            }
            return TryParseBone(unityName, out bone);
        }

        /// <summary>A <see cref="HumanBodyBones"/> from its name ("LeftUpperArm"); false for unknown names.</summary>
        public static bool TryParseBone(string unityBoneName, out HumanBodyBones bone)
        {
            bone = HumanBodyBones.Hips;
            if (string.IsNullOrEmpty(unityBoneName) || unityBoneName == "LastBone")
            {
                return false;
            }
            // Enum.TryParse also accepts numbers ("3"): only names are bones.
            if (char.IsDigit(unityBoneName[0]) || unityBoneName[0] == '-')
            {
                return false;
            }
            return Enum.TryParse(unityBoneName, false, out bone) && Enum.IsDefined(typeof(HumanBodyBones), bone);
        }

        /// <summary>Stream rotation (x, y, z, w), right-handed -> Unity rotation (x, -y, -z, w).</summary>
        public static Quaternion RotationToUnity(float x, float y, float z, float w)
        {
            return new Quaternion(x, -y, -z, w);
        }

        /// <summary>Stream position (x, y, z) metres, right-handed -> Unity position (-x, y, z) metres.</summary>
        public static Vector3 PositionToUnity(float x, float y, float z)
        {
            return new Vector3(-x, y, z);
        }
    }
}
