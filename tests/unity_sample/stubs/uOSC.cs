// Test stand-in for the parts of uOSC (https://github.com/hecomi/uOSC, MIT) the unity_sample scripts use,
// with uOSC v2's shapes: a Message struct (address, values), DataReceiveEvent : UnityEvent<Message>, and
// uOscServer's public fields port, autoStart and onDataReceived. The real server parses UDP packets, expands
// bundles and invokes onDataReceived on the main thread; the test harness does that part itself.
using System;
using UnityEngine;
using UnityEngine.Events;

namespace uOSC
{
    public struct Message
    {
        public string address;
        public object[] values;

        public Message(string address, params object[] packet)
        {
            this.address = address;
            this.values = packet;
        }
    }

    [Serializable]
    public class DataReceiveEvent : UnityEvent<Message> { }

    public class uOscServer : MonoBehaviour
    {
        public int port = 3333;
        public bool autoStart = true;
        public DataReceiveEvent onDataReceived = new DataReceiveEvent();
    }
}
