// ChatAnyone Bridge — Unity sample (Apache-2.0, the project's licence); see unity_sample/README.md.
using System;
using System.Collections.Generic;
using System.Text;

namespace ChatAnyone
{
    /// <summary>A message that is not valid msgpack or does not follow the ChatAnyone stream protocol.</summary>
    public class ChatAnyoneProtocolException : Exception
    {
        public ChatAnyoneProtocolException(string message) : base(message) { }
    }

    /// <summary>
    /// A small msgpack reader (https://github.com/msgpack/msgpack/blob/master/spec.md) for the shapes the
    /// ChatAnyone stream uses. Values become: map -> <c>Dictionary&lt;string, object&gt;</c> (string keys
    /// only), array -> <c>List&lt;object&gt;</c>, str -> <c>string</c> (UTF-8), bin -> <c>byte[]</c>,
    /// integers -> <c>long</c> (<c>ulong</c> above long.MaxValue), float 32/64 -> <c>double</c>, bool, nil -> null.
    /// Extension types are rejected. Every length is checked against the bytes left; nesting is limited.
    /// </summary>
    public static class ChatAnyoneMessagePack
    {
        /// <summary>Deepest nesting of maps and arrays accepted.</summary>
        public const int MaxDepth = 16;

        /// <summary>Reads the one msgpack value that fills <paramref name="data"/>[0, count).</summary>
        /// <exception cref="ChatAnyoneProtocolException">truncated, trailing bytes, unsupported type, non-string
        /// map key, bad UTF-8, or nesting deeper than <see cref="MaxDepth"/>.</exception>
        public static object Read(byte[] data, int count)
        {
            if (data == null)
            {
                throw new ChatAnyoneProtocolException("no message bytes");
            }
            if (count < 0 || count > data.Length)
            {
                throw new ChatAnyoneProtocolException("message length out of range");
            }
            int pos = 0;
            object value = ReadValue(data, count, ref pos, 0);
            if (pos != count)
            {
                throw new ChatAnyoneProtocolException("msgpack: " + (count - pos) + " trailing bytes after the message");
            }
            return value;
        }

        static readonly UTF8Encoding StrictUtf8 = new UTF8Encoding(false, true);

        static void Need(int count, int pos, long n)
        {
            if (n < 0 || n > count - pos)
            {
                throw new ChatAnyoneProtocolException("msgpack: truncated message");
            }
        }

        static ulong ReadBigEndian(byte[] d, int count, ref int pos, int size)
        {
            Need(count, pos, size);
            ulong v = 0;
            for (int i = 0; i < size; i++)
            {
                v = (v << 8) | d[pos + i];
            }
            pos += size;
            return v;
        }

        static object ReadValue(byte[] d, int count, ref int pos, int depth)
        {
            Need(count, pos, 1);
            byte b = d[pos++];
            if (b <= 0x7f) return (long)b;                                  // positive fixint
            if (b >= 0xe0) return (long)(sbyte)b;                           // negative fixint
            if (b >= 0x80 && b <= 0x8f) return ReadMap(d, count, ref pos, b & 0x0f, depth);
            if (b >= 0x90 && b <= 0x9f) return ReadArray(d, count, ref pos, b & 0x0f, depth);
            if (b >= 0xa0 && b <= 0xbf) return ReadString(d, count, ref pos, b & 0x1f);
            switch (b)
            {
                case 0xc0: return null;
                case 0xc2: return false;
                case 0xc3: return true;
                case 0xc4: return ReadBytes(d, count, ref pos, (long)ReadBigEndian(d, count, ref pos, 1));
                case 0xc5: return ReadBytes(d, count, ref pos, (long)ReadBigEndian(d, count, ref pos, 2));
                case 0xc6: return ReadBytes(d, count, ref pos, (long)ReadBigEndian(d, count, ref pos, 4));
                case 0xca:
                {
                    uint bits = (uint)ReadBigEndian(d, count, ref pos, 4);
                    return (double)BitConverter.ToSingle(BitConverter.GetBytes(bits), 0);
                }
                case 0xcb:
                {
                    ulong bits = ReadBigEndian(d, count, ref pos, 8);
                    return BitConverter.Int64BitsToDouble((long)bits);
                }
                case 0xcc: return (long)ReadBigEndian(d, count, ref pos, 1);
                case 0xcd: return (long)ReadBigEndian(d, count, ref pos, 2);
                case 0xce: return (long)ReadBigEndian(d, count, ref pos, 4);
                case 0xcf:
                {
                    ulong v = ReadBigEndian(d, count, ref pos, 8);
                    if (v > long.MaxValue) return v;
                    return (long)v;
                }
                case 0xd0: return (long)(sbyte)ReadBigEndian(d, count, ref pos, 1);
                case 0xd1: return (long)(short)ReadBigEndian(d, count, ref pos, 2);
                case 0xd2: return (long)(int)ReadBigEndian(d, count, ref pos, 4);
                case 0xd3: return (long)ReadBigEndian(d, count, ref pos, 8);
                case 0xd9: return ReadString(d, count, ref pos, (long)ReadBigEndian(d, count, ref pos, 1));
                case 0xda: return ReadString(d, count, ref pos, (long)ReadBigEndian(d, count, ref pos, 2));
                case 0xdb: return ReadString(d, count, ref pos, (long)ReadBigEndian(d, count, ref pos, 4));
                case 0xdc: return ReadArray(d, count, ref pos, (long)ReadBigEndian(d, count, ref pos, 2), depth);
                case 0xdd: return ReadArray(d, count, ref pos, (long)ReadBigEndian(d, count, ref pos, 4), depth);
                case 0xde: return ReadMap(d, count, ref pos, (long)ReadBigEndian(d, count, ref pos, 2), depth);
                case 0xdf: return ReadMap(d, count, ref pos, (long)ReadBigEndian(d, count, ref pos, 4), depth);
                default:
                    throw new ChatAnyoneProtocolException("msgpack: unsupported type byte 0x" + b.ToString("x2"));
            }
        }

        static byte[] ReadBytes(byte[] d, int count, ref int pos, long n)
        {
            Need(count, pos, n);
            var result = new byte[n];
            Buffer.BlockCopy(d, pos, result, 0, (int)n);
            pos += (int)n;
            return result;
        }

        static string ReadString(byte[] d, int count, ref int pos, long n)
        {
            Need(count, pos, n);
            string s;
            try
            {
                s = StrictUtf8.GetString(d, pos, (int)n);
            }
            catch (ArgumentException)
            {
                throw new ChatAnyoneProtocolException("msgpack: a string is not valid UTF-8");
            }
            pos += (int)n;
            return s;
        }

        static List<object> ReadArray(byte[] d, int count, ref int pos, long n, int depth)
        {
            if (depth >= MaxDepth)
            {
                throw new ChatAnyoneProtocolException("msgpack: nested deeper than " + MaxDepth);
            }
            Need(count, pos, n);  // every element takes at least one byte
            var list = new List<object>((int)n);
            for (long i = 0; i < n; i++)
            {
                list.Add(ReadValue(d, count, ref pos, depth + 1));
            }
            return list;
        }

        static Dictionary<string, object> ReadMap(byte[] d, int count, ref int pos, long n, int depth)
        {
            if (depth >= MaxDepth)
            {
                throw new ChatAnyoneProtocolException("msgpack: nested deeper than " + MaxDepth);
            }
            Need(count, pos, 2 * n);  // every key and value takes at least one byte
            var map = new Dictionary<string, object>((int)n, StringComparer.Ordinal);
            for (long i = 0; i < n; i++)
            {
                var key = ReadValue(d, count, ref pos, depth + 1) as string;
                if (key == null)
                {
                    throw new ChatAnyoneProtocolException("msgpack: map keys must be strings");
                }
                map[key] = ReadValue(d, count, ref pos, depth + 1);
            }
            return map;
        }
    }
}
