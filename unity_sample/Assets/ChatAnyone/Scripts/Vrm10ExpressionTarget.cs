// ChatAnyone Bridge — Unity sample (Apache-2.0, the project's licence); see unity_sample/README.md.
// Compiled only with the scripting define symbol CHATANYONE_UNIVRM10 (Project Settings > Player > Scripting
// Define Symbols), once UniVRM's com.vrmc.vrm package is in the project: the other scripts need no UniVRM.
#if CHATANYONE_UNIVRM10
using System;
using System.Collections.Generic;
using UnityEngine;
using UniVRM10;

namespace ChatAnyone
{
    /// <summary>
    /// Routes face weights by name into a VRM avatar's expressions (UniVRM 1.0 runtime, which also loads
    /// VRM 0.x files). Names match the avatar's expression names case-insensitively: the VRM 1.0 presets
    /// (aa, ih, ou, ee, oh, blink, blinkLeft, happy ...), custom expressions such as the ARKit "perfect sync"
    /// set (JawOpen ...), and the VRM 0.x preset names VMC senders use (A, I, U, E, O, Blink, Blink_L, Blink_R,
    /// Joy, Angry, Sorrow, Fun, Surprised, Neutral, LookUp ...). Names the avatar does not have fall through to
    /// the mesh blendshapes.
    /// </summary>
    [AddComponentMenu("ChatAnyone/VRM 1.0 Expression Target")]
    public class Vrm10ExpressionTarget : MonoBehaviour, IChatAnyoneExpressionTarget
    {
        [Tooltip("The avatar's Vrm10Instance; empty: the one on this GameObject or its parents.")]
        [SerializeField] Vrm10Instance vrm = null;

        Dictionary<string, ExpressionKey> keys;

        /// <summary>VRM 0.x preset name (lower-case) -> VRM 1.0 preset name (lower-case).</summary>
        static readonly Dictionary<string, string> Vrm0Aliases = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            { "a", "aa" }, { "i", "ih" }, { "u", "ou" }, { "e", "ee" }, { "o", "oh" },
            { "blink_l", "blinkleft" }, { "blink_r", "blinkright" },
            { "joy", "happy" }, { "sorrow", "sad" }, { "fun", "relaxed" },
        };

        void Start()
        {
            // Creating the runtime now also creates its control rig (when the avatar uses one) before the
            // receivers capture the rest pose on their first frame.
            BuildKeys();
        }

        public bool SetExpressionWeight(string name, float weight)
        {
            if (name == null)
            {
                return false;
            }
            if (keys == null && !BuildKeys())
            {
                return false;
            }
            string lower = name.ToLowerInvariant();
            ExpressionKey key;
            if (!keys.TryGetValue(lower, out key))
            {
                string alias;
                if (!Vrm0Aliases.TryGetValue(lower, out alias) || !keys.TryGetValue(alias, out key))
                {
                    return false;
                }
            }
            vrm.Runtime.Expression.SetWeight(key, Mathf.Clamp01(weight));
            return true;
        }

        bool BuildKeys()
        {
            if (vrm == null)
            {
                vrm = GetComponentInParent<Vrm10Instance>();
            }
            if (vrm == null)
            {
                return false;
            }
            keys = new Dictionary<string, ExpressionKey>(StringComparer.Ordinal);
            foreach (ExpressionKey key in vrm.Runtime.Expression.ExpressionKeys)
            {
                if (!string.IsNullOrEmpty(key.Name))
                {
                    keys[key.Name.ToLowerInvariant()] = key;
                }
            }
            return true;
        }
    }
}
#endif
