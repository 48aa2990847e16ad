// Test harness for the unity_sample scripts, run with mono against the stub UnityEngine/uOSC assemblies.
// It prints JSON on stdout that tests/unity_sample/test_unity_scripts.py checks against Python's values.
//
//   Harness.exe conventions
//   Harness.exe decode MSG_FILE...                      decoded WebSocket messages (floats as uint32 bits)
//   Harness.exe msgpack FILE...                         any msgpack values, as generic JSON trees
//   Harness.exe vmc RIG_FILE [--raw] [--bone-positions] PACKET_FILE...
//                                                       OSC packets (bundles or messages, parsed here from the
//                                                       bytes) fed to VmcReceiver; a snapshot after each packet
//   Harness.exe ws-apply RIG_FILE MSG_FILE...           messages fed to the client on the "main thread"
//   Harness.exe ws-live RIG_FILE URL TOKEN|- TIMEOUT_S  the client connects to URL; snapshot when the stream closes
//
// RIG_FILE lines:  root PX PY PZ QX QY QZ QW
//                  node NAME PARENT|- PX PY PZ QX QY QZ QW           (a transform that is not a humanoid bone)
//                  bone UNITY_NAME PARENT|- PX PY PZ QX QY QZ QW     (local position / rotation; parent: bone or node)
//                  mesh NAME SHAPE[,SHAPE...]
//                  vrm KEY[,KEY...]         (a Vrm10Instance with these expressions; "custom:Name" or preset name)
using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;
using System.Threading;
using ChatAnyone;
using UnityEngine;

static class Harness
{
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    static int Main(string[] args)
    {
        try
        {
            switch (args[0])
            {
                case "conventions": Conventions(); break;
                case "decode": Decode(args); break;
                case "msgpack": MsgPack(args); break;
                case "vmc": Vmc(args); break;
                case "ws-apply": WsApply(args); break;
                case "ws-live": WsLive(args); break;
                default: throw new ArgumentException("unknown command " + args[0]);
            }
            return 0;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine("harness: " + e);
            return 1;
        }
    }

    // ---------------------------------------------------------------------------------------------- JSON
    static string Str(string s)
    {
        var b = new StringBuilder("\"");
        foreach (char c in s)
        {
            if (c == '"' || c == '\\') b.Append('\\').Append(c);
            else if (c < 0x20) b.Append("\\u").Append(((int)c).ToString("x4"));
            else b.Append(c);
        }
        return b.Append('"').ToString();
    }

    static string Num(double d) { return d.ToString("R", Inv); }
    static string Bits(float f) { return BitConverter.ToUInt32(BitConverter.GetBytes(f), 0).ToString(Inv); }
    static string Arr(IEnumerable<string> items) { return "[" + string.Join(",", items) + "]"; }
    static string FloatBits(float[] v) { var s = new List<string>(); foreach (var f in v) s.Add(Bits(f)); return Arr(s); }
    static string Q(Quaternion q) { return Arr(new[] { Num(q.x), Num(q.y), Num(q.z), Num(q.w) }); }
    static string V(Vector3 v) { return Arr(new[] { Num(v.x), Num(v.y), Num(v.z) }); }

    static string Obj(List<KeyValuePair<string, string>> fields)
    {
        var parts = new List<string>();
        foreach (var f in fields) parts.Add(Str(f.Key) + ":" + f.Value);
        return "{" + string.Join(",", parts) + "}";
    }

    static KeyValuePair<string, string> F(string k, string v) { return new KeyValuePair<string, string>(k, v); }

    // ---------------------------------------------------------------------------------------- commands
    static void Conventions()
    {
        var fields = new List<KeyValuePair<string, string>>();
        foreach (var pair in ChatAnyoneConventions.SmplxToUnity)
        {
            HumanBodyBones bone;
            bool ok = ChatAnyoneConventions.TryGetUnityBone(pair.Key, out bone);
            fields.Add(F(pair.Key, ok ? Str(bone.ToString()) : "null"));
        }
        HumanBodyBones dummy;
        var rejects = new List<string>();
        foreach (var name in new[] { "LastBone", "3", "-1", "hips", "NotABone", "" })
            rejects.Add(ChatAnyoneConventions.TryParseBone(name, out dummy) ? "true" : "false");
        Quaternion q = ChatAnyoneConventions.RotationToUnity(0.1f, 0.2f, 0.3f, 0.9f);
        Vector3 p = ChatAnyoneConventions.PositionToUnity(1f, 2f, 3f);
        Console.WriteLine(Obj(new List<KeyValuePair<string, string>>
        {
            F("smplx_to_unity", Obj(fields)), F("rejects", Arr(rejects)), F("rotation", Q(q)), F("position", V(p)),
        }));
    }

    static string MessageJson(StreamMessage m)
    {
        var f = new List<KeyValuePair<string, string>> { F("type", Str(m.TypeName)) };
        if (m.Header != null)
        {
            var h = m.Header;
            var parents = new List<string>();
            foreach (var p in h.Parents) parents.Add(p.ToString(Inv));
            var faces = new List<string>(); foreach (var s in h.FaceNames) faces.Add(Str(s));
            var joints = new List<string>(); foreach (var s in h.JointNames) joints.Add(Str(s));
            f.Add(F("version", h.Version.ToString(Inv))); f.Add(F("fps", Num(h.Fps)));
            f.Add(F("face_names", Arr(faces))); f.Add(F("joint_names", Arr(joints)));
            f.Add(F("parents", Arr(parents))); f.Add(F("rotation", Str(h.Rotation))); f.Add(F("axes", Str(h.Axes)));
        }
        if (m.Frame != null)
        {
            var fr = m.Frame;
            f.Add(F("seq", fr.Seq.ToString(Inv))); f.Add(F("time", Num(fr.TimeSeconds)));
            f.Add(F("face_bits", FloatBits(fr.Face))); f.Add(F("rotations_bits", FloatBits(fr.Rotations)));
            f.Add(F("translation_bits", FloatBits(fr.Translation)));
        }
        if (m.Type == StreamMessageType.End) f.Add(F("frames", m.EndFrames.ToString(Inv)));
        return Obj(f);
    }

    static void Decode(string[] args)
    {
        var items = new List<string>();
        for (int i = 1; i < args.Length; i++)
        {
            byte[] data = File.ReadAllBytes(args[i]);
            try
            {
                items.Add(MessageJson(ChatAnyoneProtocol.Decode(data, data.Length)));
            }
            catch (ChatAnyoneProtocolException e)
            {
                items.Add(Obj(new List<KeyValuePair<string, string>> { F("error", Str(e.Message)) }));
            }
        }
        Console.WriteLine(Arr(items));
    }

    static string Tree(object v)
    {
        if (v == null) return "null";
        if (v is bool) return (bool)v ? "true" : "false";
        if (v is long) return ((long)v).ToString(Inv);
        if (v is ulong) return ((ulong)v).ToString(Inv);
        if (v is double) return "{\"f\":" + Str(((double)v).ToString("R", Inv)) + "}";
        if (v is string) return Str((string)v);
        if (v is byte[]) return "{\"bin\":" + Str(BitConverter.ToString((byte[])v).Replace("-", "").ToLowerInvariant()) + "}";
        var list = v as List<object>;
        if (list != null) { var items = new List<string>(); foreach (var x in list) items.Add(Tree(x)); return Arr(items); }
        var map = v as Dictionary<string, object>;
        if (map != null) { var f = new List<KeyValuePair<string, string>>(); foreach (var p in map) f.Add(F(p.Key, Tree(p.Value))); return "{\"map\":" + Obj(f) + "}"; }
        throw new InvalidOperationException("unexpected value type " + v.GetType());
    }

    static void MsgPack(string[] args)
    {
        var items = new List<string>();
        for (int i = 1; i < args.Length; i++)
        {
            byte[] data = File.ReadAllBytes(args[i]);
            try { items.Add("{\"value\":" + Tree(ChatAnyoneMessagePack.Read(data, data.Length)) + "}"); }
            catch (ChatAnyoneProtocolException e) { items.Add("{\"error\":" + Str(e.Message) + "}"); }
        }
        Console.WriteLine(Arr(items));
    }

    // ------------------------------------------------------------------------------------------- rigs
    sealed class Rig
    {
        public GameObject Root;
        public Animator Animator;
        public readonly Dictionary<string, Transform> Bones = new Dictionary<string, Transform>();
        public readonly Dictionary<string, Transform> Nodes = new Dictionary<string, Transform>();
        public readonly List<SkinnedMeshRenderer> Meshes = new List<SkinnedMeshRenderer>();
        public UniVRM10.Vrm10Instance Vrm;
    }

    static float P(string s) { return float.Parse(s, Inv); }

    static Rig BuildRig(string path)
    {
        var rig = new Rig { Root = new GameObject("Avatar") };
        rig.Animator = rig.Root.AddComponent<Animator>();
        rig.Animator.avatar = new Avatar { name = "avatar" };
        foreach (var raw in File.ReadAllLines(path))
        {
            var w = raw.Split(new[] { ' ' }, StringSplitOptions.RemoveEmptyEntries);
            if (w.Length == 0) continue;
            if (w[0] == "root")
            {
                rig.Root.transform.localPosition = new Vector3(P(w[1]), P(w[2]), P(w[3]));
                rig.Root.transform.localRotation = new Quaternion(P(w[4]), P(w[5]), P(w[6]), P(w[7]));
            }
            else if (w[0] == "bone" || w[0] == "node")
            {
                var go = new GameObject(w[1]);
                Transform parent = rig.Root.transform;
                if (w[2] != "-" && !rig.Bones.TryGetValue(w[2], out parent)) parent = rig.Nodes[w[2]];
                go.transform.SetParent(parent);
                go.transform.localPosition = new Vector3(P(w[3]), P(w[4]), P(w[5]));
                go.transform.localRotation = new Quaternion(P(w[6]), P(w[7]), P(w[8]), P(w[9]));
                if (w[0] == "node")
                {
                    rig.Nodes[w[1]] = go.transform;
                    continue;
                }
                rig.Bones[w[1]] = go.transform;
                rig.Animator.StubBones[(HumanBodyBones)Enum.Parse(typeof(HumanBodyBones), w[1])] = go.transform;
            }
            else if (w[0] == "mesh")
            {
                var go = new GameObject(w[1]);
                go.transform.SetParent(rig.Root.transform);
                var smr = go.AddComponent<SkinnedMeshRenderer>();
                smr.sharedMesh = new Mesh { name = w[1] };
                foreach (var shape in w[2].Split(','))
                    smr.sharedMesh.AddBlendShapeFrame(shape, 100f, new Vector3[0], new Vector3[0], new Vector3[0]);
                rig.Meshes.Add(smr);
            }
            else if (w[0] == "vrm")
            {
                rig.Vrm = rig.Root.AddComponent<UniVRM10.Vrm10Instance>();
                foreach (var key in w[1].Split(','))
                {
                    rig.Vrm.Runtime.Expression.StubAdd(key.StartsWith("custom:")
                        ? UniVRM10.ExpressionKey.CreateCustom(key.Substring(7))
                        : UniVRM10.ExpressionKey.StubPreset(key));
                }
                rig.Root.AddComponent<Vrm10ExpressionTarget>();
            }
            else throw new FormatException("rig line: " + raw);
        }
        return rig;
    }

    static string Snapshot(Rig rig, List<KeyValuePair<string, string>> extra)
    {
        var local = new List<KeyValuePair<string, string>>();
        var rootRel = new List<KeyValuePair<string, string>>();
        var pos = new List<KeyValuePair<string, string>>();
        Quaternion rootInv = Quaternion.Inverse(rig.Root.transform.rotation);
        foreach (var pair in rig.Bones)
        {
            local.Add(F(pair.Key, Q(pair.Value.localRotation)));
            rootRel.Add(F(pair.Key, Q(rootInv * pair.Value.rotation)));
            pos.Add(F(pair.Key, V(pair.Value.localPosition)));
        }
        var weights = new List<KeyValuePair<string, string>>();
        foreach (var smr in rig.Meshes)
            for (int i = 0; i < smr.sharedMesh.blendShapeCount; i++)
                weights.Add(F(smr.name + "/" + smr.sharedMesh.GetBlendShapeName(i), Num(smr.GetBlendShapeWeight(i))));
        var expressions = new List<KeyValuePair<string, string>>();
        if (rig.Vrm != null)
            foreach (var key in rig.Vrm.Runtime.Expression.ExpressionKeys)
                expressions.Add(F(key.Name, Num(rig.Vrm.Runtime.Expression.GetWeight(key))));
        var logs = new List<string>();
        foreach (var l in Debug.StubLog) logs.Add(Str(l));
        var f = new List<KeyValuePair<string, string>>
        {
            F("local_rotation", Obj(local)), F("root_relative_rotation", Obj(rootRel)), F("local_position", Obj(pos)),
            F("root_position", V(rig.Root.transform.localPosition)), F("root_rotation", Q(rig.Root.transform.localRotation)),
            F("weights", Obj(weights)), F("expressions", Obj(expressions)), F("log", Arr(logs)),
        };
        f.AddRange(extra);
        return Obj(f);
    }

    // -------------------------------------------------------------------------------------------- OSC
    // OSC 1.0 (https://opensoundcontrol.stanford.edu/spec-1_0.html): big-endian, strings NUL-padded to 4.
    static string OscString(byte[] d, ref int pos)
    {
        int end = Array.IndexOf(d, (byte)0, pos);
        string s = Encoding.UTF8.GetString(d, pos, end - pos);
        pos = (end + 4) & ~3;
        return s;
    }

    static int BE32(byte[] d, int pos) { return (d[pos] << 24) | (d[pos + 1] << 16) | (d[pos + 2] << 8) | d[pos + 3]; }

    static void OscParse(byte[] d, int start, int length, List<uOSC.Message> into)
    {
        int pos = start;
        if (length >= 8 && Encoding.ASCII.GetString(d, start, 8) == "#bundle\0")
        {
            pos += 16;  // "#bundle\0" and the 8-byte time tag
            while (pos < start + length)
            {
                int size = BE32(d, pos);
                OscParse(d, pos + 4, size, into);
                pos += 4 + size;
            }
            return;
        }
        string address = OscString(d, ref pos);
        string tags = OscString(d, ref pos);
        var values = new List<object>();
        for (int i = 1; i < tags.Length; i++)
        {
            switch (tags[i])
            {
                case 'f': values.Add(BitConverter.ToSingle(BitConverter.GetBytes(BE32(d, pos)), 0)); pos += 4; break;
                case 'i': values.Add(BE32(d, pos)); pos += 4; break;
                case 's': values.Add(OscString(d, ref pos)); break;
                case 'T': values.Add(true); break;
                case 'F': values.Add(false); break;
                default: throw new FormatException("OSC type tag " + tags[i] + " not handled by the harness");
            }
        }
        into.Add(new uOSC.Message(address, values.ToArray()));
    }

    static void Vmc(string[] args)
    {
        Rig rig = BuildRig(args[1]);
        var server = rig.Root.AddComponent<uOSC.uOscServer>();
        var receiver = rig.Root.AddComponent<VmcReceiver>();  // OnEnable finds the server and listens
        var snapshots = new List<string>();
        foreach (var arg in new List<string>(args).GetRange(2, args.Length - 2))
        {
            if (arg == "--raw") { receiver.RotationsAreRestRelative = false; continue; }
            if (arg == "--bone-positions") { receiver.ApplyBonePositions = true; continue; }
            byte[] packet = File.ReadAllBytes(arg);
            var messages = new List<uOSC.Message>();
            OscParse(packet, 0, packet.Length, messages);
            foreach (var m in messages) server.onDataReceived.Invoke(m);  // as uOscServer.Update does
            snapshots.Add(Snapshot(rig, new List<KeyValuePair<string, string>>
            {
                F("messages", receiver.MessagesReceived.ToString(Inv)), F("bones_applied", receiver.BonesApplied.ToString(Inv)),
                F("bones_unknown", receiver.BonesUnknown.ToString(Inv)), F("malformed", receiver.MessagesMalformed.ToString(Inv)),
                F("blend_applies", receiver.BlendApplies.ToString(Inv)), F("blend_unknown", receiver.BlendNamesUnknown.ToString(Inv)),
                F("listeners", server.onDataReceived.StubListenerCount.ToString(Inv)),
            }));
        }
        receiver.enabled = false;
        snapshots.Add(Obj(new List<KeyValuePair<string, string>> { F("listeners_after_disable", server.onDataReceived.StubListenerCount.ToString(Inv)) }));
        Console.WriteLine(Arr(snapshots));
    }

    static List<KeyValuePair<string, string>> ClientCounters(ChatAnyoneWebSocketClient client)
    {
        return new List<KeyValuePair<string, string>>
        {
            F("frames_applied", client.FramesApplied.ToString(Inv)), F("last_seq", client.LastSeq.ToString(Inv)),
            F("last_time", Num(client.LastTimeSeconds)), F("frames_without_header", client.FramesWithoutHeader.ToString(Inv)),
        };
    }

    static void WsApply(string[] args)
    {
        Rig rig = BuildRig(args[1]);
        rig.Root.SetActive(false);  // no connection: messages are fed directly
        var client = rig.Root.AddComponent<ChatAnyoneWebSocketClient>();
        client.Animator = rig.Animator;
        var snapshots = new List<string>();
        for (int i = 2; i < args.Length; i++)
        {
            byte[] data = File.ReadAllBytes(args[i]);
            StreamMessage m = ChatAnyoneProtocol.Decode(data, data.Length);
            if (m.Type == StreamMessageType.Header) client.SetHeader(m.Header);
            else if (m.Type == StreamMessageType.Frame) client.ApplyFrame(m.Frame);
            snapshots.Add(Snapshot(rig, ClientCounters(client)));
        }
        Console.WriteLine(Arr(snapshots));
    }

    static void WsLive(string[] args)
    {
        Rig rig = BuildRig(args[1]);
        rig.Root.SetActive(false);
        var client = rig.Root.AddComponent<ChatAnyoneWebSocketClient>();
        client.Animator = rig.Animator;
        client.Url = args[2];
        client.Token = args[3] == "-" ? "" : args[3];
        client.ReconnectSeconds = 0f;
        double timeout = double.Parse(args[4], Inv);
        rig.Root.SetActive(true);  // OnEnable: the background task connects
        var seqs = new List<string>();
        var watch = System.Diagnostics.Stopwatch.StartNew();
        long lastSeq = -1;
        while (watch.Elapsed.TotalSeconds < timeout)
        {
            bool finished = client.Connection.IsFinished;
            Engine.Send(client, "Update");
            if (client.FramesApplied > 0 && client.LastSeq != lastSeq)
            {
                lastSeq = client.LastSeq;
                seqs.Add(lastSeq.ToString(Inv));
            }
            if (finished) break;  // one more Update ran after the task ended: nothing is left pending
            Thread.Sleep(5);
        }
        ChatAnyoneStreamConnection c = client.Connection;
        int version;
        string error = c.GetLastError(out version);
        var extra = ClientCounters(client);
        extra.Add(F("finished", c.IsFinished ? "true" : "false"));
        extra.Add(F("frames_received", c.FramesReceived.ToString(Inv)));
        extra.Add(F("frames_skipped", c.FramesSkipped.ToString(Inv)));
        extra.Add(F("end_messages", c.EndMessages.ToString(Inv)));
        extra.Add(F("connections", c.Connections.ToString(Inv)));
        extra.Add(F("error", error == null ? "null" : Str(error)));
        extra.Add(F("applied_seqs", Arr(seqs)));
        string snapshot = Snapshot(rig, extra);
        rig.Root.SetActive(false);  // OnDisable stops the connection
        Console.WriteLine(snapshot);
    }
}
