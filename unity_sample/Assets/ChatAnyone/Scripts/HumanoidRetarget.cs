// ChatAnyone Bridge — Unity sample (Apache-2.0, the project's licence); see unity_sample/README.md.
using System.Collections.Generic;
using UnityEngine;

namespace ChatAnyone
{
    /// <summary>
    /// Puts rest-relative rotations onto the humanoid bones of an <see cref="Animator"/>.
    ///
    /// The stream (and our VMC sender) gives each joint's local rotation <c>R</c> relative to the rest pose
    /// (a T-pose facing +Z in which every joint frame is aligned with the avatar: identity rotations).
    /// A Unity humanoid in its T-pose bind has its own rest local rotations <c>L</c> (identity only for
    /// "normalized" rigs such as UniVRM's VRM 0.x import) and rest rotations relative to the avatar root
    /// <c>W = W_parent * L</c>. Posing every joint by <c>R</c> in the avatar's frame means the posed world
    /// rotation is <c>W' = D * W</c> with <c>D = R_root * ... * R_parent * R</c>; solving for the local
    /// rotation gives
    /// <code>localRotation = L * (W^-1 * R * W)</code>
    /// — "rest-local times ours", with ours first expressed in the bone's own rest frame. For a normalized
    /// rig (W = L = identity) this is just <c>localRotation = R</c>. It is the retargeting that three-vrm's
    /// and UniVRM's normalized humanoids perform.
    ///
    /// The rest pose is captured the first time a bone is posed (or by <see cref="CaptureRestPose"/>), so the
    /// avatar must be in its T-pose bind then: an Animator without a controller, nothing else animating the
    /// bones. It is captured again when the Animator's <c>avatar</c> changes: UniVRM 1.0's runtime control rig
    /// swaps in an avatar of normalized bones (identity rest rotations) and copies their pose onto the
    /// skeleton every LateUpdate, so those are the bones to pose.
    /// </summary>
    public sealed class HumanoidRetarget
    {
        struct RestBone
        {
            public Transform transform;
            public Quaternion localRotation;      // L
            public Quaternion rootRotation;       // W, relative to the avatar root
            public Quaternion rootRotationInverse;
            public Vector3 localPosition;
        }

        readonly Animator animator;
        readonly Transform root;
        readonly Dictionary<HumanBodyBones, RestBone> rest = new Dictionary<HumanBodyBones, RestBone>();
        bool captured;
        Avatar capturedAvatar;
        Quaternion hipsParentRootRotationInverse = Quaternion.identity;

        /// <param name="animator">a humanoid Animator (its <c>GetBoneTransform</c> finds the bones).</param>
        /// <param name="root">the avatar root the stream's axes are attached to; null: the Animator's transform.</param>
        public HumanoidRetarget(Animator animator, Transform root)
        {
            this.animator = animator;
            this.root = root != null ? root : (animator != null ? animator.transform : null);
        }

        /// <summary>Whether the rest pose has been captured (for the Animator's current avatar).</summary>
        public bool IsCaptured { get { return captured && !AvatarChanged(); } }

        bool AvatarChanged()
        {
            return animator != null && animator.avatar != capturedAvatar;
        }

        void EnsureCaptured()
        {
            if (!captured || AvatarChanged())
            {
                CaptureRestPose();
            }
        }

        /// <summary>Number of humanoid bones found on the Animator (after capture).</summary>
        public int BoneCount { get { return rest.Count; } }

        /// <summary>
        /// Records every humanoid bone's rest local rotation, rest rotation relative to the root and rest
        /// local position. Call it while the avatar is in its T-pose; called automatically on first use.
        /// </summary>
        public void CaptureRestPose()
        {
            rest.Clear();
            captured = true;
            hipsParentRootRotationInverse = Quaternion.identity;
            if (animator == null || root == null)
            {
                return;
            }
            capturedAvatar = animator.avatar;
            Quaternion rootInverse = Quaternion.Inverse(root.rotation);
            for (int i = 0; i < (int)HumanBodyBones.LastBone; i++)
            {
                var bone = (HumanBodyBones)i;
                Transform t = animator.GetBoneTransform(bone);
                if (t == null)
                {
                    continue;
                }
                Quaternion w = rootInverse * t.rotation;
                rest[bone] = new RestBone
                {
                    transform = t,
                    localRotation = t.localRotation,
                    rootRotation = w,
                    rootRotationInverse = Quaternion.Inverse(w),
                    localPosition = t.localPosition,
                };
                if (bone == HumanBodyBones.Hips && t.parent != null)
                {
                    hipsParentRootRotationInverse = Quaternion.Inverse(rootInverse * t.parent.rotation);
                }
            }
        }

        /// <summary>The bone's transform, or null if the avatar has no such bone.</summary>
        public Transform GetBone(HumanBodyBones bone)
        {
            EnsureCaptured();
            RestBone r;
            return rest.TryGetValue(bone, out r) ? r.transform : null;
        }

        /// <summary>
        /// Poses <paramref name="bone"/> by a rest-relative rotation given in Unity axes (already converted
        /// with (x, -y, -z, w)): <c>localRotation = L * (W^-1 * rotation * W)</c>. False if the bone is absent.
        /// </summary>
        public bool SetRestRelativeRotation(HumanBodyBones bone, Quaternion rotation)
        {
            EnsureCaptured();
            RestBone r;
            if (!rest.TryGetValue(bone, out r))
            {
                return false;
            }
            r.transform.localRotation = r.localRotation * (r.rootRotationInverse * rotation * r.rootRotation);
            return true;
        }

        /// <summary>Sets the bone's local rotation as given (no rest pose involved). False if absent.</summary>
        public bool SetLocalRotation(HumanBodyBones bone, Quaternion localRotation)
        {
            Transform t = GetBone(bone);
            if (t == null)
            {
                return false;
            }
            t.localRotation = localRotation;
            return true;
        }

        /// <summary>Sets the bone's local position as given (metres). False if absent.</summary>
        public bool SetLocalPosition(HumanBodyBones bone, Vector3 localPosition)
        {
            Transform t = GetBone(bone);
            if (t == null)
            {
                return false;
            }
            t.localPosition = localPosition;
            return true;
        }

        /// <summary>
        /// Moves the hips by <paramref name="offset"/> (Unity axes, metres, in the avatar root's frame) from
        /// their rest position. False if the avatar has no hips.
        /// </summary>
        public bool SetHipsOffset(Vector3 offset)
        {
            EnsureCaptured();
            RestBone r;
            if (!rest.TryGetValue(HumanBodyBones.Hips, out r))
            {
                return false;
            }
            r.transform.localPosition = r.localPosition + hipsParentRootRotationInverse * offset;
            return true;
        }

        /// <summary>Puts every captured bone back to its rest local rotation and position.</summary>
        public void ResetToRestPose()
        {
            foreach (var pair in rest)
            {
                pair.Value.transform.localRotation = pair.Value.localRotation;
                pair.Value.transform.localPosition = pair.Value.localPosition;
            }
        }
    }
}
