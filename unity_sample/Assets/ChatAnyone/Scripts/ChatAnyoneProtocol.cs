// ChatAnyone Bridge — Unity sample (Apache-2.0, the project's licence); see unity_sample/README.md.
using System;
using System.Collections.Generic;

namespace ChatAnyone
{
    /// <summary>The <c>header</c> message: sent once, first, on every connection.</summary>
    public sealed class StreamHeader
    {
        public int Version;
        /// <summary>Frames per second of the stream.</summary>
        public double Fps;
        /// <summary>Face channel names (ARKit, lowerCamel), in the order of <see cref="StreamFrame.Face"/>.</summary>
        public string[] FaceNames;
        /// <summary>Joint names (SMPL-X), in the order of <see cref="StreamFrame.Rotations"/>.</summary>
        public string[] JointNames;
        /// <summary>Parent index of each joint (-1 for the root); parents come before their children.</summary>
        public int[] Parents;
        /// <summary>"quat_xyzw_local_rest_relative".</summary>
        public string Rotation;
        /// <summary>"right_handed_y_up_facing_z_metres".</summary>
        public string Axes;
    }

    /// <summary>A <c>frame</c> message.</summary>
    public sealed class StreamFrame
    {
        /// <summary>Frame number from the start of the stream.</summary>
        public long Seq;
        /// <summary>Frame time in seconds from the start of the audio.</summary>
        public double TimeSeconds;
        /// <summary>Face weights in [0, 1], one per <see cref="StreamHeader.FaceNames"/>.</summary>
        public float[] Face;
        /// <summary>Local rest-relative joint rotations, 4 floats (x, y, z, w) per joint, right-handed.</summary>
        public float[] Rotations;
        /// <summary>Root translation (x, y, z) metres, right-handed; zeros when the root is locked.</summary>
        public float[] Translation;
    }

    public enum StreamMessageType { Header, Frame, End, Other }

    /// <summary>One decoded WebSocket message.</summary>
    public sealed class StreamMessage
    {
        public StreamMessageType Type;
        /// <summary>The message's <c>type</c> string.</summary>
        public string TypeName;
        public StreamHeader Header;
        public StreamFrame Frame;
        /// <summary>For <c>end</c>: the number of frames the stream had.</summary>
        public long EndFrames;
    }

    /// <summary>
    /// The ChatAnyone WebSocket stream (DESIGN.md "Wire formats"; <c>bridge/protocol.py</c>): one msgpack map per
    /// binary WebSocket message.
    /// <list type="bullet">
    /// <item><c>{"type": "header", "version": 1, "fps", "face_names", "joint_names", "parents", "rotation", "axes"}</c></item>
    /// <item><c>{"type": "frame", "seq", "time", "face", "rotations", "translation"}</c>: the last three are bin,
    /// little-endian float32 (52, 55x4 as x, y, z, w, and 3 values).</item>
    /// <item><c>{"type": "end", "frames"}</c></item>
    /// </list>
    /// </summary>
    public static class ChatAnyoneProtocol
    {
        public const int Version = 1;
        public const string RotationConvention = "quat_xyzw_local_rest_relative";
        public const string AxesConvention = "right_handed_y_up_facing_z_metres";

        /// <summary>Decodes one message from <paramref name="data"/>[0, count).</summary>
        /// <exception cref="ChatAnyoneProtocolException">not msgpack, not a map with a string "type", a header of
        /// another version or convention, or frame payloads of the wrong size.</exception>
        public static StreamMessage Decode(byte[] data, int count)
        {
            var map = ChatAnyoneMessagePack.Read(data, count) as Dictionary<string, object>;
            if (map == null)
            {
                throw new ChatAnyoneProtocolException("a message must be a msgpack map");
            }
            string type = GetString(map, "type");
            var message = new StreamMessage { TypeName = type, Type = StreamMessageType.Other };
            if (type == "header")
            {
                message.Type = StreamMessageType.Header;
                message.Header = DecodeHeader(map);
            }
            else if (type == "frame")
            {
                message.Type = StreamMessageType.Frame;
                message.Frame = DecodeFrame(map);
            }
            else if (type == "end")
            {
                message.Type = StreamMessageType.End;
                object frames;
                message.EndFrames = map.TryGetValue("frames", out frames) && frames is long ? (long)frames : -1;
            }
            return message;
        }

        static StreamHeader DecodeHeader(Dictionary<string, object> map)
        {
            var header = new StreamHeader
            {
                Version = (int)GetLong(map, "version"),
                Fps = GetNumber(map, "fps"),
                FaceNames = GetStringArray(map, "face_names"),
                JointNames = GetStringArray(map, "joint_names"),
                Rotation = GetString(map, "rotation"),
                Axes = GetString(map, "axes"),
            };
            if (header.Version != Version)
            {
                throw new ChatAnyoneProtocolException("stream version " + header.Version + " is not supported (this client reads version " + Version + ")");
            }
            if (header.Rotation != RotationConvention || header.Axes != AxesConvention)
            {
                throw new ChatAnyoneProtocolException("unknown conventions: rotation '" + header.Rotation + "', axes '" + header.Axes + "'");
            }
            object parents;
            var list = map.TryGetValue("parents", out parents) ? parents as List<object> : null;
            if (list == null || list.Count != header.JointNames.Length)
            {
                throw new ChatAnyoneProtocolException("header: 'parents' must list one parent per joint");
            }
            header.Parents = new int[list.Count];
            for (int i = 0; i < list.Count; i++)
            {
                if (!(list[i] is long) || (long)list[i] < -1 || (long)list[i] >= i)
                {
                    throw new ChatAnyoneProtocolException("header: parent of joint " + i + " must be -1 or an earlier joint");
                }
                header.Parents[i] = (int)(long)list[i];
            }
            if (!(header.Fps > 0))
            {
                throw new ChatAnyoneProtocolException("header: fps must be positive");
            }
            return header;
        }

        static StreamFrame DecodeFrame(Dictionary<string, object> map)
        {
            var frame = new StreamFrame
            {
                Seq = GetLong(map, "seq"),
                TimeSeconds = GetNumber(map, "time"),
                Face = GetFloat32LE(map, "face"),
                Rotations = GetFloat32LE(map, "rotations"),
                Translation = map.ContainsKey("translation") ? GetFloat32LE(map, "translation") : new float[3],
            };
            if (frame.Rotations.Length % 4 != 0)
            {
                throw new ChatAnyoneProtocolException("frame: 'rotations' must hold 4 float32 per joint");
            }
            if (frame.Translation.Length != 3)
            {
                throw new ChatAnyoneProtocolException("frame: 'translation' must hold 3 float32");
            }
            return frame;
        }

        /// <summary>Little-endian float32 values from bytes (the length must be a multiple of 4).</summary>
        public static float[] Float32LE(byte[] bytes)
        {
            if (bytes.Length % 4 != 0)
            {
                throw new ChatAnyoneProtocolException("float32 payload of " + bytes.Length + " bytes is not a multiple of 4");
            }
            var result = new float[bytes.Length / 4];
            if (BitConverter.IsLittleEndian)
            {
                Buffer.BlockCopy(bytes, 0, result, 0, bytes.Length);
            }
            else
            {
                var tmp = new byte[4];
                for (int i = 0; i < result.Length; i++)
                {
                    tmp[0] = bytes[4 * i + 3]; tmp[1] = bytes[4 * i + 2]; tmp[2] = bytes[4 * i + 1]; tmp[3] = bytes[4 * i];
                    result[i] = BitConverter.ToSingle(tmp, 0);
                }
            }
            return result;
        }

        static object Get(Dictionary<string, object> map, string key)
        {
            object value;
            if (!map.TryGetValue(key, out value))
            {
                throw new ChatAnyoneProtocolException("missing '" + key + "'");
            }
            return value;
        }

        static string GetString(Dictionary<string, object> map, string key)
        {
            var s = Get(map, key) as string;
            if (s == null)
            {
                throw new ChatAnyoneProtocolException("'" + key + "' must be a string");
            }
            return s;
        }

        static long GetLong(Dictionary<string, object> map, string key)
        {
            object v = Get(map, key);
            if (!(v is long))
            {
                throw new ChatAnyoneProtocolException("'" + key + "' must be an integer");
            }
            return (long)v;
        }

        static double GetNumber(Dictionary<string, object> map, string key)
        {
            object v = Get(map, key);
            if (v is double) return (double)v;
            if (v is long) return (long)v;
            throw new ChatAnyoneProtocolException("'" + key + "' must be a number");
        }

        static string[] GetStringArray(Dictionary<string, object> map, string key)
        {
            var list = Get(map, key) as List<object>;
            if (list == null)
            {
                throw new ChatAnyoneProtocolException("'" + key + "' must be an array");
            }
            var result = new string[list.Count];
            for (int i = 0; i < list.Count; i++)
            {
                result[i] = list[i] as string;
                if (result[i] == null)
                {
                    throw new ChatAnyoneProtocolException("'" + key + "' must hold strings");
                }
            }
            return result;
        }

        static float[] GetFloat32LE(Dictionary<string, object> map, string key)
        {
            var bytes = Get(map, key) as byte[];
            if (bytes == null)
            {
                throw new ChatAnyoneProtocolException("'" + key + "' must be binary (little-endian float32)");
            }
            return Float32LE(bytes);
        }
    }
}
