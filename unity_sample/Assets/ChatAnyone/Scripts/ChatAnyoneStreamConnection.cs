// ChatAnyone Bridge — Unity sample (Apache-2.0, the project's licence); see unity_sample/README.md.
using System;
using System.IO;
using System.Net.WebSockets;
using System.Threading;
using System.Threading.Tasks;

namespace ChatAnyone
{
    /// <summary>
    /// Receives the ChatAnyone WebSocket stream on a background task (no Unity API is touched there).
    /// The main thread polls <see cref="TryTakeHeader"/> and <see cref="TryTakeFrame"/>: only the newest
    /// frame is kept, so a frame the main thread had no time for is skipped (counted in
    /// <see cref="FramesSkipped"/>), never queued up into lag.
    /// </summary>
    public sealed class ChatAnyoneStreamConnection : IDisposable
    {
        /// <summary>Largest message accepted (bytes); a frame is about 1 kB.</summary>
        public const int MaxMessageBytes = 1 << 20;

        readonly Uri uri;
        readonly string token;
        readonly TimeSpan reconnectDelay;
        readonly object gate = new object();

        StreamHeader pendingHeader;
        StreamFrame pendingFrame;
        long framesReceived;
        long framesSkipped;
        long endMessages;
        long connections;
        string lastError;
        int errorVersion;
        volatile bool connected;

        CancellationTokenSource cancel;
        Task task;

        /// <param name="uri">ws:// address of <c>chatanyone stream --ws PORT</c>.</param>
        /// <param name="token">sent as <c>Authorization: Bearer TOKEN</c> when not empty.</param>
        /// <param name="reconnectSeconds">wait before reconnecting after the stream closes or fails; 0: do not reconnect.</param>
        public ChatAnyoneStreamConnection(Uri uri, string token, float reconnectSeconds)
        {
            if (uri == null)
            {
                throw new ArgumentNullException("uri");
            }
            if (uri.Scheme != "ws" && uri.Scheme != "wss")
            {
                throw new ArgumentException("the stream address must start with ws:// or wss://, got " + uri);
            }
            this.uri = uri;
            this.token = token;
            reconnectDelay = TimeSpan.FromSeconds(Math.Max(0f, reconnectSeconds));
        }

        public bool IsConnected { get { return connected; } }
        /// <summary>Whether the background task has finished (no reconnect left, or stopped).</summary>
        public bool IsFinished { get { return task != null && task.IsCompleted; } }
        public long FramesReceived { get { lock (gate) return framesReceived; } }
        public long FramesSkipped { get { lock (gate) return framesSkipped; } }
        /// <summary>Number of <c>end</c> messages received (one per finished stream).</summary>
        public long EndMessages { get { lock (gate) return endMessages; } }
        /// <summary>Number of successful connections.</summary>
        public long Connections { get { lock (gate) return connections; } }

        /// <summary>The last error and a counter that changes with each new error (to log each once).</summary>
        public string GetLastError(out int version)
        {
            lock (gate)
            {
                version = errorVersion;
                return lastError;
            }
        }

        /// <summary>Starts the background task (once).</summary>
        public void Start()
        {
            if (task != null)
            {
                return;
            }
            cancel = new CancellationTokenSource();
            CancellationToken ct = cancel.Token;
            task = Task.Run(() => RunAsync(ct));
        }

        /// <summary>A header received since the last call (each connection sends one first).</summary>
        public bool TryTakeHeader(out StreamHeader header)
        {
            lock (gate)
            {
                header = pendingHeader;
                pendingHeader = null;
                return header != null;
            }
        }

        /// <summary>The newest frame received since the last call.</summary>
        public bool TryTakeFrame(out StreamFrame frame)
        {
            lock (gate)
            {
                frame = pendingFrame;
                pendingFrame = null;
                return frame != null;
            }
        }

        /// <summary>Stops the task and closes the socket (waits up to <paramref name="timeoutMs"/>).</summary>
        public void Stop(int timeoutMs = 1000)
        {
            if (cancel == null)
            {
                return;
            }
            cancel.Cancel();
            try
            {
                task.Wait(timeoutMs);
            }
            catch (AggregateException)
            {
                // the task records its own errors; cancellation lands here
            }
            cancel.Dispose();
            cancel = null;
        }

        public void Dispose()
        {
            Stop();
        }

        void SetError(string message)
        {
            lock (gate)
            {
                lastError = message;
                errorVersion++;
            }
        }

        async Task RunAsync(CancellationToken ct)
        {
            while (!ct.IsCancellationRequested)
            {
                try
                {
                    await ReceiveStreamAsync(ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
                catch (ChatAnyoneProtocolException e)
                {
                    SetError("bad message from " + uri + ": " + e.Message);
                }
                catch (Exception e)
                {
                    if (ct.IsCancellationRequested)
                    {
                        break;
                    }
                    SetError("cannot receive from " + uri + ": " + e.Message);
                }
                finally
                {
                    connected = false;
                }
                if (reconnectDelay <= TimeSpan.Zero)
                {
                    break;
                }
                try
                {
                    await Task.Delay(reconnectDelay, ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }

        async Task ReceiveStreamAsync(CancellationToken ct)
        {
            using (var socket = new ClientWebSocket())
            {
                if (!string.IsNullOrEmpty(token))
                {
                    socket.Options.SetRequestHeader("Authorization", "Bearer " + token);
                }
                await socket.ConnectAsync(uri, ct).ConfigureAwait(false);
                connected = true;
                lock (gate)
                {
                    connections++;
                }
                var buffer = new byte[16 * 1024];
                using (var message = new MemoryStream())
                {
                    while (socket.State == WebSocketState.Open)
                    {
                        WebSocketReceiveResult result = await socket.ReceiveAsync(new ArraySegment<byte>(buffer), ct).ConfigureAwait(false);
                        if (result.MessageType == WebSocketMessageType.Close)
                        {
                            if (socket.State == WebSocketState.CloseReceived)
                            {
                                await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "", ct).ConfigureAwait(false);
                            }
                            break;
                        }
                        if (message.Length + result.Count > MaxMessageBytes)
                        {
                            await socket.CloseOutputAsync(WebSocketCloseStatus.MessageTooBig, "message too big", ct).ConfigureAwait(false);
                            throw new ChatAnyoneProtocolException("a message exceeds " + MaxMessageBytes + " bytes");
                        }
                        message.Write(buffer, 0, result.Count);
                        if (!result.EndOfMessage)
                        {
                            continue;
                        }
                        if (result.MessageType == WebSocketMessageType.Binary)
                        {
                            Handle(ChatAnyoneProtocol.Decode(message.GetBuffer(), (int)message.Length));
                        }
                        message.SetLength(0);
                    }
                }
            }
        }

        void Handle(StreamMessage message)
        {
            lock (gate)
            {
                switch (message.Type)
                {
                    case StreamMessageType.Header:
                        pendingHeader = message.Header;
                        pendingFrame = null;  // frames of an earlier stream no longer apply
                        break;
                    case StreamMessageType.Frame:
                        if (pendingFrame != null)
                        {
                            framesSkipped++;
                        }
                        pendingFrame = message.Frame;
                        framesReceived++;
                        break;
                    case StreamMessageType.End:
                        endMessages++;
                        break;
                }
            }
        }
    }
}
