// ChatAnyone Bridge — Unity sample (Apache-2.0, the project's licence); see unity_sample/README.md.
using System;
using System.Collections.Generic;
using UnityEngine;
using uOSC;

namespace ChatAnyone
{
    /// <summary>
    /// Receives the VMC protocol (https://protocol.vmc.info, "Performer -> Marionette") through a uOSC
    /// <see cref="uOscServer"/> and applies it to a humanoid avatar:
    /// <list type="bullet">
    /// <item><c>/VMC/Ext/Root/Pos</c> (name, position xyz, rotation xyzw[, scale, offset]): the avatar root, relative
    /// to where it stood when the first message came.</item>
    /// <item><c>/VMC/Ext/Bone/Pos</c> (Unity <see cref="HumanBodyBones"/> name, local position xyz, local rotation
    /// xyzw, Unity axes): the bone's rotation (rest-relative by default, see <see cref="HumanoidRetarget"/>);
    /// the position only with <c>applyBonePositions</c>.</item>
    /// <item><c>/VMC/Ext/Blend/Val</c> (name, value 0-1) are buffered and applied together on
    /// <c>/VMC/Ext/Blend/Apply</c>: expressions or mesh blendshapes by name, 0-100.</item>
    /// </list>
    /// uOSC expands bundles and calls <c>onDataReceived</c> on the main thread, so Unity objects are touched
    /// only there. Numbers may arrive as OSC floats or ints; a message with missing or mistyped arguments is
    /// dropped and counted.
    /// </summary>
    [AddComponentMenu("ChatAnyone/VMC Receiver")]
    public class VmcReceiver : MonoBehaviour
    {
        public const string RootAddress = "/VMC/Ext/Root/Pos";
        public const string BoneAddress = "/VMC/Ext/Bone/Pos";
        public const string BlendValueAddress = "/VMC/Ext/Blend/Val";
        public const string BlendApplyAddress = "/VMC/Ext/Blend/Apply";

        [Header("Input")]
        [Tooltip("The uOSC server listening on the VMC port (39539 by default); empty: the one on this GameObject.")]
        [SerializeField] uOscServer server = null;

        [Header("Avatar")]
        [Tooltip("The avatar's humanoid Animator (no controller: the avatar must rest in its T-pose until the first message).")]
        [SerializeField] Animator animator = null;
        [Tooltip("Moved by /VMC/Ext/Root/Pos; empty: the Animator's transform.")]
        [SerializeField] Transform root = null;
        [Tooltip("Meshes with the face blendshapes; empty: every SkinnedMeshRenderer under the Animator.")]
        [SerializeField] SkinnedMeshRenderer[] faceRenderers = new SkinnedMeshRenderer[0];

        [Header("Options")]
        [Tooltip("Bone rotations are relative to a T-pose with identity rotations (ChatAnyone, and any sender whose avatar is a normalized VRM): " +
                 "they are composed with this avatar's own rest rotations. Off: written to localRotation as they come.")]
        [SerializeField] bool rotationsAreRestRelative = true;
        [SerializeField] bool applyRootPosition = true;
        [SerializeField] bool applyRootRotation = true;
        [Tooltip("Also write each bone's local position (only for an avatar with the sender's proportions).")]
        [SerializeField] bool applyBonePositions = false;

        HumanoidRetarget retarget;
        BlendShapeTable blendShapes;
        readonly Dictionary<string, float> pendingBlend = new Dictionary<string, float>(StringComparer.Ordinal);
        readonly Dictionary<string, int> boneByName = new Dictionary<string, int>(StringComparer.Ordinal);
        readonly HashSet<string> warned = new HashSet<string>(StringComparer.Ordinal);
        bool rootCaptured;
        Vector3 rootRestPosition;
        Quaternion rootRestRotation = Quaternion.identity;
        uOscServer listeningTo;

        /// <summary>Messages handled (any address).</summary>
        public long MessagesReceived { get; private set; }
        /// <summary>Bone messages applied to a bone of the avatar.</summary>
        public long BonesApplied { get; private set; }
        /// <summary>Bone messages naming no HumanBodyBones, or a bone this avatar lacks.</summary>
        public long BonesUnknown { get; private set; }
        /// <summary>Messages with missing or mistyped arguments.</summary>
        public long MessagesMalformed { get; private set; }
        /// <summary>Number of /VMC/Ext/Blend/Apply handled.</summary>
        public long BlendApplies { get; private set; }
        /// <summary>Blend names that matched no expression or blendshape (each counted once per Apply).</summary>
        public long BlendNamesUnknown { get; private set; }

        public Animator Animator { get { return animator; } set { animator = value; retarget = null; blendShapes = null; rootCaptured = false; } }
        public uOscServer Server { get { return server; } set { server = value; } }
        public bool RotationsAreRestRelative { get { return rotationsAreRestRelative; } set { rotationsAreRestRelative = value; } }
        public bool ApplyBonePositions { get { return applyBonePositions; } set { applyBonePositions = value; } }

        void OnEnable()
        {
            if (server == null)
            {
                server = GetComponent<uOscServer>();
            }
            if (server == null)
            {
                Debug.LogError("ChatAnyone VMC: add a uOscServer (port 39539) to this GameObject or assign one");
                enabled = false;
                return;
            }
            listeningTo = server;
            listeningTo.onDataReceived.AddListener(OnDataReceived);
        }

        void OnDisable()
        {
            if (listeningTo != null)
            {
                listeningTo.onDataReceived.RemoveListener(OnDataReceived);
                listeningTo = null;
            }
        }

        void EnsureAvatar()
        {
            if (animator == null)
            {
                animator = GetComponentInChildren<Animator>();
            }
            if (retarget == null)
            {
                retarget = new HumanoidRetarget(animator, root);
            }
            if (blendShapes == null)
            {
                SkinnedMeshRenderer[] renderers = faceRenderers;
                var owner = animator != null ? (Component)animator : this;
                if (renderers == null || renderers.Length == 0)
                {
                    renderers = owner.GetComponentsInChildren<SkinnedMeshRenderer>(true);
                }
                blendShapes = new BlendShapeTable(renderers, owner.GetComponentsInChildren<IChatAnyoneExpressionTarget>(true));
            }
        }

        /// <summary>Handles one VMC message (the uOSC <c>onDataReceived</c> listener).</summary>
        public void OnDataReceived(Message message)
        {
            MessagesReceived++;
            string address = message.address;
            object[] values = message.values ?? new object[0];
            if (address == BoneAddress)
            {
                HandleBone(values);
            }
            else if (address == BlendValueAddress)
            {
                string name;
                float value;
                if (values.Length != 2 || !TryString(values[0], out name) || !TryFloat(values[1], out value))
                {
                    Malformed(address, "name and value");
                    return;
                }
                pendingBlend[name] = value;
            }
            else if (address == BlendApplyAddress)
            {
                EnsureAvatar();
                foreach (var pair in pendingBlend)
                {
                    if (blendShapes.Set(pair.Key, pair.Value) == 0)
                    {
                        BlendNamesUnknown++;
                    }
                }
                pendingBlend.Clear();
                BlendApplies++;
            }
            else if (address == RootAddress)
            {
                HandleRoot(values);
            }
            // /VMC/Ext/OK, /VMC/Ext/T and the rest carry nothing this receiver uses.
        }

        void HandleBone(object[] values)
        {
            string name;
            Vector3 position;
            Quaternion rotation;
            if (values.Length != 8 || !TryString(values[0], out name) || !TryPose(values, 1, out position, out rotation))
            {
                Malformed(BoneAddress, "a bone name and 7 numbers");
                return;
            }
            int boneIndex;
            if (!boneByName.TryGetValue(name, out boneIndex))
            {
                HumanBodyBones parsed;
                boneIndex = ChatAnyoneConventions.TryParseBone(name, out parsed) ? (int)parsed : -1;
                boneByName[name] = boneIndex;
            }
            EnsureAvatar();
            if (boneIndex < 0 || retarget.GetBone((HumanBodyBones)boneIndex) == null)
            {
                BonesUnknown++;
                return;
            }
            var bone = (HumanBodyBones)boneIndex;
            if (rotationsAreRestRelative)
            {
                retarget.SetRestRelativeRotation(bone, rotation);
            }
            else
            {
                retarget.SetLocalRotation(bone, rotation);
            }
            if (applyBonePositions)
            {
                retarget.SetLocalPosition(bone, position);
            }
            BonesApplied++;
        }

        void HandleRoot(object[] values)
        {
            string name;
            Vector3 position;
            Quaternion rotation;
            // 8 arguments; VMC 2.1 appends scale (3) and offset (3), which this sample ignores.
            if ((values.Length != 8 && values.Length != 14) || !TryString(values[0], out name) || !TryPose(values, 1, out position, out rotation))
            {
                Malformed(RootAddress, "a name and 7 (or 13) numbers");
                return;
            }
            EnsureAvatar();
            Transform target = root != null ? root : (animator != null ? animator.transform : null);
            if (target == null)
            {
                return;
            }
            if (!rootCaptured)
            {
                rootCaptured = true;
                rootRestPosition = target.localPosition;
                rootRestRotation = target.localRotation;
            }
            if (applyRootPosition)
            {
                target.localPosition = rootRestPosition + rootRestRotation * position;
            }
            if (applyRootRotation)
            {
                target.localRotation = rootRestRotation * rotation;
            }
        }

        void Malformed(string address, string expected)
        {
            MessagesMalformed++;
            if (warned.Add(address))
            {
                Debug.LogWarning("ChatAnyone VMC: " + address + " needs " + expected + "; such messages are dropped");
            }
        }

        static bool TryString(object value, out string s)
        {
            s = value as string;
            return s != null;
        }

        /// <summary>An OSC number (float, int, double) as a finite float.</summary>
        static bool TryFloat(object value, out float f)
        {
            if (value is float) f = (float)value;
            else if (value is int) f = (int)value;
            else if (value is double) f = (float)(double)value;
            else if (value is long) f = (long)value;
            else
            {
                f = 0f;
                return false;
            }
            return !float.IsNaN(f) && !float.IsInfinity(f);
        }

        static bool TryPose(object[] values, int start, out Vector3 position, out Quaternion rotation)
        {
            var v = new float[7];
            position = Vector3.zero;
            rotation = Quaternion.identity;
            for (int i = 0; i < 7; i++)
            {
                if (!TryFloat(values[start + i], out v[i]))
                {
                    return false;
                }
            }
            float norm = (float)Math.Sqrt(v[3] * v[3] + v[4] * v[4] + v[5] * v[5] + v[6] * v[6]);
            if (norm < 1e-6f)
            {
                return false;
            }
            position = new Vector3(v[0], v[1], v[2]);
            rotation = new Quaternion(v[3] / norm, v[4] / norm, v[5] / norm, v[6] / norm);
            return true;
        }
    }
}
