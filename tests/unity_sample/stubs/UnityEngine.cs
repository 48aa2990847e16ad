// Test stand-in for the few UnityEngine types the unity_sample scripts use. Signatures follow the Unity
// scripting reference (so code compiling here compiles in Unity); behaviour is the minimum needed to run the
// scripts in a test: a transform hierarchy with real quaternion maths, components found by type, blendshape
// weights stored per renderer, and MonoBehaviour messages (Awake, OnEnable, OnDisable) sent like the engine.
using System;
using System.Collections.Generic;
using System.Reflection;

namespace UnityEngine
{
    public class Object
    {
        public string name = "";

        public static implicit operator bool(Object o) { return !ReferenceEquals(o, null); }
        public static bool operator ==(Object a, Object b) { return ReferenceEquals(a, b); }
        public static bool operator !=(Object a, Object b) { return !ReferenceEquals(a, b); }
        public override bool Equals(object other) { return ReferenceEquals(this, other); }
        public override int GetHashCode() { return base.GetHashCode(); }
    }

    public class Component : Object
    {
        internal GameObject go;
        public GameObject gameObject { get { return go; } }
        public Transform transform { get { return go.transform; } }
        public T GetComponent<T>() { return go.GetComponent<T>(); }
        public T GetComponentInChildren<T>() { return go.GetComponentInChildren<T>(); }
        public T[] GetComponentsInChildren<T>(bool includeInactive) { return go.GetComponentsInChildren<T>(includeInactive); }
        public T GetComponentInParent<T>()
        {
            for (Transform t = transform; t != null; t = t.parent)
            {
                T c = t.gameObject.GetComponent<T>();
                if (!ReferenceEquals(c, null)) return c;
            }
            return default(T);
        }
    }

    public class Behaviour : Component
    {
        bool enabledValue = true;
        public bool enabled
        {
            get { return enabledValue; }
            set
            {
                if (value == enabledValue) return;
                enabledValue = value;
                if (go != null && go.activeSelf) Engine.Send(this, value ? "OnEnable" : "OnDisable");
            }
        }
    }

    public class MonoBehaviour : Behaviour { }

    /// <summary>Test helper: sends MonoBehaviour messages the way the engine does (private methods included).</summary>
    public static class Engine
    {
        public static void Send(object target, string method)
        {
            MethodInfo m = null;
            for (Type t = target.GetType(); t != null && m == null; t = t.BaseType)
            {
                m = t.GetMethod(method, BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly, null, Type.EmptyTypes, null);
            }
            if (m != null) m.Invoke(target, null);
        }
    }

    public sealed class GameObject : Object
    {
        readonly List<Component> components = new List<Component>();
        bool active = true;

        public GameObject(string name)
        {
            this.name = name;
            var t = new Transform();
            t.go = this;
            components.Add(t);
        }

        public Transform transform { get { return (Transform)components[0]; } }
        public bool activeSelf { get { return active; } }

        public void SetActive(bool value)
        {
            if (value == active) return;
            active = value;
            foreach (var c in components.ToArray())
            {
                var b = c as Behaviour;
                if (b != null && b.enabled) Engine.Send(b, value ? "OnEnable" : "OnDisable");
            }
        }

        public T AddComponent<T>() where T : Component, new()
        {
            var c = new T();
            c.go = this;
            c.name = name;
            components.Add(c);
            if (active)
            {
                Engine.Send(c, "Awake");
                var b = c as Behaviour;
                if (b == null || b.enabled) Engine.Send(c, "OnEnable");
            }
            return c;
        }

        public T GetComponent<T>()
        {
            foreach (var c in components) if (c is T) return (T)(object)c;
            return default(T);
        }

        public T GetComponentInChildren<T>()
        {
            var all = GetComponentsInChildren<T>(false);
            return all.Length > 0 ? all[0] : default(T);
        }

        public T[] GetComponentsInChildren<T>(bool includeInactive)
        {
            var found = new List<T>();
            Collect(transform, found, includeInactive);
            return found.ToArray();
        }

        static void Collect<T>(Transform t, List<T> found, bool includeInactive)
        {
            if (!includeInactive && !t.gameObject.activeSelf) return;
            foreach (var c in t.gameObject.components) if (c is T) found.Add((T)(object)c);
            for (int i = 0; i < t.childCount; i++) Collect(t.GetChild(i), found, includeInactive);
        }
    }

    public class Transform : Component
    {
        Transform parentValue;
        readonly List<Transform> children = new List<Transform>();
        public Vector3 localPosition = Vector3.zero;
        public Quaternion localRotation = Quaternion.identity;

        public Transform parent { get { return parentValue; } set { SetParent(value); } }
        public int childCount { get { return children.Count; } }
        public Transform GetChild(int index) { return children[index]; }

        public void SetParent(Transform p)
        {
            if (parentValue != null) parentValue.children.Remove(this);
            parentValue = p;
            if (p != null) p.children.Add(this);
        }

        public Quaternion rotation
        {
            get { return parentValue == null ? localRotation : parentValue.rotation * localRotation; }
        }

        public Vector3 position
        {
            get { return parentValue == null ? localPosition : parentValue.position + parentValue.rotation * localPosition; }
        }
    }

    public class Avatar : Object { }

    public class Animator : Behaviour
    {
        /// <summary>Test helper: the humanoid bones this stub Animator reports.</summary>
        public readonly Dictionary<HumanBodyBones, Transform> StubBones = new Dictionary<HumanBodyBones, Transform>();
        public Avatar avatar;
        public bool isHuman { get { return StubBones.Count > 0; } }

        public Transform GetBoneTransform(HumanBodyBones humanBoneId)
        {
            if (humanBoneId < 0 || humanBoneId >= HumanBodyBones.LastBone)
                throw new IndexOutOfRangeException("humanBoneId must be between 0 and " + HumanBodyBones.LastBone);
            Transform t;
            return StubBones.TryGetValue(humanBoneId, out t) ? t : null;
        }
    }

    // Same names and values as UnityEngine.HumanBodyBones.
    public enum HumanBodyBones
    {
        Hips = 0, LeftUpperLeg = 1, RightUpperLeg = 2, LeftLowerLeg = 3, RightLowerLeg = 4, LeftFoot = 5, RightFoot = 6,
        Spine = 7, Chest = 8, Neck = 9, Head = 10, LeftShoulder = 11, RightShoulder = 12, LeftUpperArm = 13,
        RightUpperArm = 14, LeftLowerArm = 15, RightLowerArm = 16, LeftHand = 17, RightHand = 18, LeftToes = 19,
        RightToes = 20, LeftEye = 21, RightEye = 22, Jaw = 23,
        LeftThumbProximal = 24, LeftThumbIntermediate = 25, LeftThumbDistal = 26,
        LeftIndexProximal = 27, LeftIndexIntermediate = 28, LeftIndexDistal = 29,
        LeftMiddleProximal = 30, LeftMiddleIntermediate = 31, LeftMiddleDistal = 32,
        LeftRingProximal = 33, LeftRingIntermediate = 34, LeftRingDistal = 35,
        LeftLittleProximal = 36, LeftLittleIntermediate = 37, LeftLittleDistal = 38,
        RightThumbProximal = 39, RightThumbIntermediate = 40, RightThumbDistal = 41,
        RightIndexProximal = 42, RightIndexIntermediate = 43, RightIndexDistal = 44,
        RightMiddleProximal = 45, RightMiddleIntermediate = 46, RightMiddleDistal = 47,
        RightRingProximal = 48, RightRingIntermediate = 49, RightRingDistal = 50,
        RightLittleProximal = 51, RightLittleIntermediate = 52, RightLittleDistal = 53,
        UpperChest = 54, LastBone = 55,
    }

    public class Renderer : Component { }

    public class SkinnedMeshRenderer : Renderer
    {
        readonly Dictionary<int, float> weights = new Dictionary<int, float>();
        public Mesh sharedMesh;

        public void SetBlendShapeWeight(int index, float value)
        {
            if (sharedMesh == null || index < 0 || index >= sharedMesh.blendShapeCount)
                throw new ArgumentOutOfRangeException("index", "blendshape index out of range");
            weights[index] = value;
        }

        public float GetBlendShapeWeight(int index)
        {
            float w;
            return weights.TryGetValue(index, out w) ? w : 0f;
        }
    }

    public sealed class Mesh : Object
    {
        readonly List<string> shapes = new List<string>();
        public int blendShapeCount { get { return shapes.Count; } }
        public string GetBlendShapeName(int shapeIndex) { return shapes[shapeIndex]; }

        public void AddBlendShapeFrame(string shapeName, float frameWeight, Vector3[] deltaVertices, Vector3[] deltaNormals, Vector3[] deltaTangents)
        {
            if (!shapes.Contains(shapeName)) shapes.Add(shapeName);
        }
    }

    public struct Vector3
    {
        public float x, y, z;
        public Vector3(float x, float y, float z) { this.x = x; this.y = y; this.z = z; }
        public static Vector3 zero { get { return new Vector3(0f, 0f, 0f); } }
        public static Vector3 operator +(Vector3 a, Vector3 b) { return new Vector3(a.x + b.x, a.y + b.y, a.z + b.z); }
        public static Vector3 operator -(Vector3 a, Vector3 b) { return new Vector3(a.x - b.x, a.y - b.y, a.z - b.z); }
        public static Vector3 operator *(Vector3 a, float d) { return new Vector3(a.x * d, a.y * d, a.z * d); }
        public override string ToString() { return "(" + x + ", " + y + ", " + z + ")"; }
    }

    public struct Quaternion
    {
        public float x, y, z, w;
        public Quaternion(float x, float y, float z, float w) { this.x = x; this.y = y; this.z = z; this.w = w; }
        public static Quaternion identity { get { return new Quaternion(0f, 0f, 0f, 1f); } }

        // Hamilton product, as UnityEngine.Quaternion.operator*.
        public static Quaternion operator *(Quaternion l, Quaternion r)
        {
            return new Quaternion(
                l.w * r.x + l.x * r.w + l.y * r.z - l.z * r.y,
                l.w * r.y + l.y * r.w + l.z * r.x - l.x * r.z,
                l.w * r.z + l.z * r.w + l.x * r.y - l.y * r.x,
                l.w * r.w - l.x * r.x - l.y * r.y - l.z * r.z);
        }

        public static Vector3 operator *(Quaternion q, Vector3 v)
        {
            var r = q * new Quaternion(v.x, v.y, v.z, 0f) * Inverse(q);
            return new Vector3(r.x, r.y, r.z);
        }

        // Unity's Inverse is the conjugate divided by the squared norm.
        public static Quaternion Inverse(Quaternion q)
        {
            float n = q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w;
            return new Quaternion(-q.x / n, -q.y / n, -q.z / n, q.w / n);
        }

        public override string ToString() { return "(" + x + ", " + y + ", " + z + ", " + w + ")"; }
    }

    public static class Mathf
    {
        public static float Clamp01(float value) { return value < 0f ? 0f : (value > 1f ? 1f : value); }
    }

    public static class Debug
    {
        /// <summary>Test helper: every message logged, prefixed by its level.</summary>
        public static readonly List<string> StubLog = new List<string>();
        public static void Log(object message) { StubLog.Add("log: " + message); }
        public static void LogWarning(object message) { StubLog.Add("warning: " + message); }
        public static void LogError(object message) { StubLog.Add("error: " + message); }
    }

    [AttributeUsage(AttributeTargets.Field)]
    public sealed class SerializeField : Attribute { }

    [AttributeUsage(AttributeTargets.Field, AllowMultiple = true)]
    public class PropertyAttribute : Attribute { }

    public class HeaderAttribute : PropertyAttribute
    {
        public readonly string header;
        public HeaderAttribute(string header) { this.header = header; }
    }

    public class TooltipAttribute : PropertyAttribute
    {
        public readonly string tooltip;
        public TooltipAttribute(string tooltip) { this.tooltip = tooltip; }
    }

    [AttributeUsage(AttributeTargets.Class)]
    public sealed class AddComponentMenu : Attribute
    {
        public AddComponentMenu(string menuName) { }
    }
}

namespace UnityEngine.Events
{
    public delegate void UnityAction<T0>(T0 arg0);

    public abstract class UnityEventBase { }

    [Serializable]
    public class UnityEvent<T0> : UnityEventBase
    {
        readonly List<UnityAction<T0>> listeners = new List<UnityAction<T0>>();
        public void AddListener(UnityAction<T0> call) { listeners.Add(call); }
        public void RemoveListener(UnityAction<T0> call) { listeners.Remove(call); }
        public void Invoke(T0 arg0) { foreach (var l in listeners.ToArray()) l(arg0); }
        /// <summary>Test helper (not in Unity).</summary>
        public int StubListenerCount { get { return listeners.Count; } }
    }
}
