// Test stand-in for the parts of UniVRM 1.0 (https://github.com/vrm-c/UniVRM, MIT) that
// Vrm10ExpressionTarget uses: Vrm10Instance.Runtime.Expression with ExpressionKeys, SetWeight and GetWeight,
// and ExpressionKey with its Name (the preset's name, e.g. "aa", or the custom expression's name).
using System;
using System.Collections.Generic;
using UnityEngine;

namespace UniVRM10
{
    public struct ExpressionKey : IEquatable<ExpressionKey>
    {
        public string Name { get; private set; }
        public bool IsCustom { get; private set; }
        public static ExpressionKey CreateCustom(string key) { return new ExpressionKey { Name = key, IsCustom = true }; }
        /// <summary>Test helper: a preset key by its VRM 1.0 name ("aa", "blinkLeft", "happy" ...).</summary>
        public static ExpressionKey StubPreset(string presetName) { return new ExpressionKey { Name = presetName, IsCustom = false }; }
        public bool Equals(ExpressionKey other) { return Name == other.Name && IsCustom == other.IsCustom; }
        public override bool Equals(object obj) { return obj is ExpressionKey && Equals((ExpressionKey)obj); }
        public override int GetHashCode() { return (Name ?? "").GetHashCode() ^ (IsCustom ? 1 : 0); }
    }

    public sealed class Vrm10RuntimeExpression
    {
        readonly List<ExpressionKey> keys = new List<ExpressionKey>();
        readonly Dictionary<ExpressionKey, float> weights = new Dictionary<ExpressionKey, float>();
        public IReadOnlyList<ExpressionKey> ExpressionKeys { get { return keys; } }
        public void SetWeight(ExpressionKey expressionKey, float weight) { weights[expressionKey] = weight; }
        public float GetWeight(ExpressionKey expressionKey) { float w; return weights.TryGetValue(expressionKey, out w) ? w : 0f; }
        /// <summary>Test helper: the avatar's expressions.</summary>
        public void StubAdd(ExpressionKey key) { keys.Add(key); }
    }

    public sealed class Vrm10Runtime
    {
        public Vrm10RuntimeExpression Expression { get; private set; }
        public Vrm10Runtime() { Expression = new Vrm10RuntimeExpression(); }
    }

    public class Vrm10Instance : MonoBehaviour
    {
        Vrm10Runtime runtime;
        /// <summary>Created on first access, as in UniVRM.</summary>
        public Vrm10Runtime Runtime { get { if (runtime == null) runtime = new Vrm10Runtime(); return runtime; } }
    }
}
