// ChatAnyone Bridge — Unity sample (Apache-2.0, the project's licence); see unity_sample/README.md.
using System;
using System.Collections.Generic;
using UnityEngine;

namespace ChatAnyone
{
    /// <summary>
    /// Drives a humanoid avatar from <c>chatanyone stream AUDIO --ws PORT</c>: receives the WebSocket stream on
    /// a background task (<see cref="ChatAnyoneStreamConnection"/>) and, on the main thread, applies the newest
    /// frame: joint rotations (rest-relative, converted to Unity axes, retargeted onto the Animator's humanoid
    /// bones by <see cref="HumanoidRetarget"/>), the root translation (as a hips offset) and the face weights
    /// (by ARKit name onto expressions or mesh blendshapes, 0-100).
    ///
    /// A joint whose bone the avatar lacks (UpperChest, Jaw, toes ...) passes its rotation on to its children,
    /// so the bones below it still reach the right orientation.
    /// </summary>
    [AddComponentMenu("ChatAnyone/ChatAnyone WebSocket Client")]
    public class ChatAnyoneWebSocketClient : MonoBehaviour
    {
        [Header("Stream")]
        [Tooltip("Address of `chatanyone stream AUDIO --ws PORT` (ws://HOST:PORT).")]
        [SerializeField] string url = "ws://127.0.0.1:8765";
        [Tooltip("Access token for a server bound beyond localhost (sent as 'Authorization: Bearer TOKEN'); empty for localhost.")]
        [SerializeField] string token = "";
        [Tooltip("Seconds to wait before reconnecting when the stream ends or the server is not there; 0 never reconnects.")]
        [SerializeField] float reconnectSeconds = 2f;

        [Header("Avatar")]
        [Tooltip("The avatar's humanoid Animator (no controller: the avatar must rest in its T-pose until the first frame).")]
        [SerializeField] Animator animator = null;
        [Tooltip("Meshes with the face blendshapes; empty: every SkinnedMeshRenderer under the Animator.")]
        [SerializeField] SkinnedMeshRenderer[] faceRenderers = new SkinnedMeshRenderer[0];
        [SerializeField] bool applyBody = true;
        [SerializeField] bool applyFace = true;
        [Tooltip("Move the hips by the stream's root translation (metres).")]
        [SerializeField] bool applyTranslation = true;

        ChatAnyoneStreamConnection connection;
        HumanoidRetarget retarget;
        BlendShapeTable blendShapes;
        StreamHeader header;
        // Per joint of the header: its HumanBodyBones value, or -1 when the avatar has no such bone;
        // and the rotation it passes on to its children when it has none.
        int[] jointBones = new int[0];
        Quaternion[] carried = new Quaternion[0];
        int loggedErrorVersion;
        long framesApplied;
        long framesWithoutHeader;

        /// <summary>The current stream's header (null before the first one).</summary>
        public StreamHeader StreamHeader { get { return header; } }
        public long FramesApplied { get { return framesApplied; } }
        /// <summary>Frames that arrived before any header (ignored).</summary>
        public long FramesWithoutHeader { get { return framesWithoutHeader; } }
        /// <summary>Frames received but replaced by a newer one before an Update could apply them.</summary>
        public long FramesSkipped { get { return connection != null ? connection.FramesSkipped : 0; } }
        public ChatAnyoneStreamConnection Connection { get { return connection; } }
        /// <summary>Sequence number and time (s) of the last applied frame.</summary>
        public long LastSeq { get; private set; }
        public double LastTimeSeconds { get; private set; }

        /// <summary>The stream address (takes effect on the next enable).</summary>
        public string Url { get { return url; } set { url = value; } }
        /// <summary>The access token (takes effect on the next enable).</summary>
        public string Token { get { return token; } set { token = value; } }
        public float ReconnectSeconds { get { return reconnectSeconds; } set { reconnectSeconds = value; } }
        public Animator Animator { get { return animator; } set { animator = value; retarget = null; blendShapes = null; } }

        void OnEnable()
        {
            Uri uri;
            if (!Uri.TryCreate(url, UriKind.Absolute, out uri) || (uri.Scheme != "ws" && uri.Scheme != "wss"))
            {
                Debug.LogError("ChatAnyone: the stream address must look like ws://127.0.0.1:8765, got '" + url + "'");
                enabled = false;
                return;
            }
            connection = new ChatAnyoneStreamConnection(uri, token, reconnectSeconds);
            connection.Start();
        }

        void OnDisable()
        {
            if (connection != null)
            {
                connection.Stop();
                connection = null;
            }
        }

        void Update()
        {
            if (connection == null)
            {
                return;
            }
            int version;
            string error = connection.GetLastError(out version);
            if (version != loggedErrorVersion)
            {
                loggedErrorVersion = version;
                Debug.LogWarning("ChatAnyone: " + error);
            }
            StreamHeader newHeader;
            if (connection.TryTakeHeader(out newHeader))
            {
                SetHeader(newHeader);
            }
            StreamFrame frame;
            if (connection.TryTakeFrame(out frame))
            {
                ApplyFrame(frame);
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
                retarget = new HumanoidRetarget(animator, null);
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

        /// <summary>Binds the header's joints to the avatar's bones (called for every new header).</summary>
        public void SetHeader(StreamHeader newHeader)
        {
            header = newHeader;
            jointBones = new int[header.JointNames.Length];
            carried = new Quaternion[header.JointNames.Length];
            EnsureAvatar();
            for (int j = 0; j < jointBones.Length; j++)
            {
                HumanBodyBones bone;
                bool known = ChatAnyoneConventions.TryGetUnityBone(header.JointNames[j], out bone);
                jointBones[j] = known && retarget.GetBone(bone) != null ? (int)bone : -1;
            }
        }

        /// <summary>Applies one frame to the avatar (main thread). Frames before the first header are ignored.</summary>
        public void ApplyFrame(StreamFrame frame)
        {
            if (header == null)
            {
                framesWithoutHeader++;
                return;
            }
            int joints = header.JointNames.Length;
            if (frame.Rotations.Length != 4 * joints || frame.Face.Length != header.FaceNames.Length)
            {
                Debug.LogWarning("ChatAnyone: frame " + frame.Seq + " does not match the header (" + joints + " joints, " + header.FaceNames.Length + " face weights); skipped");
                return;
            }
            EnsureAvatar();
            if (applyBody)
            {
                float[] r = frame.Rotations;
                for (int j = 0; j < joints; j++)
                {
                    // Rotation carried down from ancestors the avatar lacks (identity when the parent has a bone).
                    int p = header.Parents[j];
                    Quaternion carry = Quaternion.identity;
                    if (p >= 0 && jointBones[p] < 0)
                    {
                        carry = carried[p] * ChatAnyoneConventions.RotationToUnity(r[4 * p], r[4 * p + 1], r[4 * p + 2], r[4 * p + 3]);
                    }
                    carried[j] = carry;
                    if (jointBones[j] < 0)
                    {
                        continue;
                    }
                    Quaternion q = carry * ChatAnyoneConventions.RotationToUnity(r[4 * j], r[4 * j + 1], r[4 * j + 2], r[4 * j + 3]);
                    retarget.SetRestRelativeRotation((HumanBodyBones)jointBones[j], q);
                }
                if (applyTranslation)
                {
                    float[] t = frame.Translation;
                    retarget.SetHipsOffset(ChatAnyoneConventions.PositionToUnity(t[0], t[1], t[2]));
                }
            }
            if (applyFace)
            {
                for (int i = 0; i < frame.Face.Length; i++)
                {
                    blendShapes.Set(header.FaceNames[i], frame.Face[i]);
                }
            }
            framesApplied++;
            LastSeq = frame.Seq;
            LastTimeSeconds = frame.TimeSeconds;
        }
    }
}
