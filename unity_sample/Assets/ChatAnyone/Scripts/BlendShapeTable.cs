// ChatAnyone Bridge — Unity sample (Apache-2.0, the project's licence); see unity_sample/README.md.
using System;
using System.Collections.Generic;
using UnityEngine;

namespace ChatAnyone
{
    /// <summary>
    /// Something that takes face weights by name before the mesh blendshapes do, e.g. a VRM expression
    /// system (see <c>Vrm10ExpressionTarget</c>). Put the component on the avatar or one of its children.
    /// </summary>
    public interface IChatAnyoneExpressionTarget
    {
        /// <summary>Sets the expression called <paramref name="name"/> to <paramref name="weight"/> in [0, 1];
        /// false if this target has no such expression (the name then goes to the mesh blendshapes).</summary>
        bool SetExpressionWeight(string name, float weight);
    }

    /// <summary>
    /// Face weights by name onto <see cref="SkinnedMeshRenderer"/> blendshapes.
    ///
    /// Names match case-insensitively and ignore any prefix up to the last '.', so "jawOpen", "JawOpen"
    /// (VMC perfect sync) and "blendShape1.jawOpen" (a Maya export) are one name. Weights come in [0, 1]
    /// (ARKit, VMC) and are written as Unity blendshape weights, 0-100. A name that several meshes share
    /// (face, teeth, tongue) is set on all of them. Expression targets get each name first.
    /// </summary>
    public sealed class BlendShapeTable
    {
        struct Slot
        {
            public SkinnedMeshRenderer renderer;
            public int index;
        }

        readonly Dictionary<string, List<Slot>> slots = new Dictionary<string, List<Slot>>(StringComparer.Ordinal);
        readonly IChatAnyoneExpressionTarget[] targets;
        int blendShapeCount;

        /// <param name="renderers">the meshes to drive (null entries and meshes without blendshapes are skipped).</param>
        /// <param name="expressionTargets">optional targets asked first (may be null).</param>
        public BlendShapeTable(IList<SkinnedMeshRenderer> renderers, IList<IChatAnyoneExpressionTarget> expressionTargets)
        {
            var list = new List<IChatAnyoneExpressionTarget>();
            if (expressionTargets != null)
            {
                foreach (var t in expressionTargets)
                {
                    if (t != null)
                    {
                        list.Add(t);
                    }
                }
            }
            targets = list.ToArray();
            if (renderers == null)
            {
                return;
            }
            foreach (var renderer in renderers)
            {
                if (renderer == null || renderer.sharedMesh == null)
                {
                    continue;
                }
                Mesh mesh = renderer.sharedMesh;
                for (int i = 0; i < mesh.blendShapeCount; i++)
                {
                    string key = Key(mesh.GetBlendShapeName(i));
                    List<Slot> list2;
                    if (!slots.TryGetValue(key, out list2))
                    {
                        list2 = new List<Slot>();
                        slots.Add(key, list2);
                    }
                    list2.Add(new Slot { renderer = renderer, index = i });
                    blendShapeCount++;
                }
            }
        }

        /// <summary>Number of mesh blendshapes found.</summary>
        public int BlendShapeCount { get { return blendShapeCount; } }

        /// <summary>The matching key of a name: the part after the last '.', lower-case (invariant culture).</summary>
        public static string Key(string name)
        {
            if (name == null)
            {
                return string.Empty;
            }
            int dot = name.LastIndexOf('.');
            string s = dot >= 0 ? name.Substring(dot + 1) : name;
            return s.ToLowerInvariant();
        }

        /// <summary>Whether <paramref name="name"/> matches at least one mesh blendshape.</summary>
        public bool HasBlendShape(string name)
        {
            return slots.ContainsKey(Key(name));
        }

        /// <summary>
        /// Sets the face weight <paramref name="name"/> to <paramref name="weight"/> (clamped to [0, 1]):
        /// an expression target that knows the name takes it; otherwise every matching mesh blendshape gets
        /// <c>weight * 100</c>. Returns the number of expressions plus blendshapes set (0: unknown name).
        /// </summary>
        public int Set(string name, float weight)
        {
            if (float.IsNaN(weight))
            {
                return 0;
            }
            float w = Mathf.Clamp01(weight);
            for (int i = 0; i < targets.Length; i++)
            {
                if (targets[i].SetExpressionWeight(name, w))
                {
                    return 1;
                }
            }
            List<Slot> list;
            if (!slots.TryGetValue(Key(name), out list))
            {
                return 0;
            }
            for (int i = 0; i < list.Count; i++)
            {
                list[i].renderer.SetBlendShapeWeight(list[i].index, w * 100f);
            }
            return list.Count;
        }
    }
}
