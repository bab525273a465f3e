# frozen_string_literal: true

# Firebox's Ruby runtime client: speaks the Lambda Runtime API (2018-06-01) and runs one
# handler, as AWS's Ruby runtimes do. Standard library only.
#
# Started as `ruby <dir>/bootstrap.rb`. With FIREBOX_CONFIG_FD set it was started before its
# function was known (a pooled environment): the function's environment arrives on that
# descriptor once its code is mounted; until then nothing of the function's is reachable.
#
# Handler "file.method" calls the top-level method `method(event:, context:)` defined in
# LAMBDA_TASK_ROOT/file.rb; "file.Module::Class.method" calls a class-level method. Gems are
# found where AWS's runtime finds them: vendor/bundle/ruby/<version>.0 in the code, and
# ruby/gems/<version>.0 in the layers (GEM_PATH); ruby/lib of the layers is on the load path.

require 'json'
require 'logger'
require 'socket'
require 'stringio'
require 'time'

# The context object handlers receive, with the attribute names of AWS's Ruby runtime.
class LambdaContext
  attr_reader :aws_request_id, :invoked_function_arn, :log_group_name,
              :log_stream_name, :function_name, :memory_limit_in_mb, :function_version,
              :identity, :tenant_id, :client_context, :deadline_ms

  def initialize(headers)
    @deadline_ms = headers['lambda-runtime-deadline-ms'].to_i
    @aws_request_id = headers['lambda-runtime-aws-request-id']
    @invoked_function_arn = headers['lambda-runtime-invoked-function-arn']
    @log_group_name = ENV['AWS_LAMBDA_LOG_GROUP_NAME']
    @log_stream_name = ENV['AWS_LAMBDA_LOG_STREAM_NAME']
    @function_name = ENV['AWS_LAMBDA_FUNCTION_NAME']
    @memory_limit_in_mb = ENV['AWS_LAMBDA_FUNCTION_MEMORY_SIZE']
    @function_version = ENV['AWS_LAMBDA_FUNCTION_VERSION']
    identity = headers['lambda-runtime-cognito-identity'].to_s
    @identity = JSON.parse(identity) unless identity.empty?
    tenant = headers['lambda-runtime-aws-tenant-id'].to_s
    @tenant_id = tenant unless tenant.empty?
    client_context = headers['lambda-runtime-client-context'].to_s
    @client_context = JSON.parse(client_context) unless client_context.empty?
  end

  def get_remaining_time_in_millis
    remaining = @deadline_ms - Process.clock_gettime(Process::CLOCK_REALTIME, :millisecond)
    remaining.positive? ? remaining : 0
  end
end

module FireboxRuntime
  API_PREFIX = '/2018-06-01/runtime'
  RUNTIME_DIR = File.dirname(File.expand_path(__FILE__))
  # Error classes whose name AWS's runtime passes in Lambda-Runtime-Function-Error-Type;
  # any other is reported there as Function<UserException>.
  STANDARD_ERRORS = %w[ArgumentError NoMethodError Exception StandardError NameError LoadError
                       SystemExit SystemStackError].freeze

  # A handler's failure in Lambda's shape: errorType is "<Phase><ErrorClass>".
  class LambdaError < StandardError
    attr_reader :error_class

    def initialize(original, phase = 'Function')
      @error_class = original.class.to_s
      @error_type = "#{phase}<#{original.class}>"
      @error_message = original.message
      @stack_trace = FireboxRuntime.user_frames(original.backtrace_locations)
      super(original.message)
    end

    def runtime_error_type
      STANDARD_ERRORS.include?(@error_class) ? @error_type : 'Function<UserException>'
    end

    def to_lambda_response
      { errorMessage: @error_message, errorType: @error_type, stackTrace: @stack_trace }
    end
  end

  # The frames of the function's code: a trace is cut where the runtime's own frames begin.
  def self.user_frames(locations)
    frames = []
    (locations || []).first(100).each do |location|
      text = location.to_s
      break if text.start_with?(RUNTIME_DIR)

      frames << text
    end
    frames
  end

  # Logger's format in Lambda, with the request id where Logger puts the program name.
  class LogFormatter < Logger::Formatter
    FORMAT = "%<sev>s, [%<datetime>s #%<process>d] %<severity>5s %<request_id>s -- %<progname>s: %<msg>s\n"

    def call(severity, time, progname, msg)
      format(FORMAT, sev: severity[0..0], datetime: format_datetime(time), process: $$,
                     severity: severity, request_id: FireboxRuntime.request_id, progname: progname,
                     msg: msg2str(msg)).encode('UTF-8')
    end
  end

  # Loggers on stdout or stderr get Lambda's format, as on Lambda.
  module LoggerPatch
    def initialize(logdev, *args, formatter: nil, **kwargs)
      if !logdev || logdev == $stdout || logdev == $stderr
        logdev = $stdout
        formatter ||= LogFormatter.new
      end
      super(logdev, *args, formatter: formatter, **kwargs)
    end
  end

  class << self
    attr_accessor :request_id
  end

  # The Runtime API over one kept-alive HTTP/1.1 connection (Net::HTTP would open one per
  # request and load far more code before the first invoke).
  class Client
    def initialize(address)
      @host, _, port = address.rpartition(':')
      @port = port.to_i
      @address = address
      @sock = nil
    end

    def next_invocation
      status, headers, body = request('GET', '/invocation/next', '')
      raise "Runtime API /next answered #{status}" unless status == 200

      [headers, body]
    end

    def respond(request_id, body, content_type = 'application/json')
      request('POST', "/invocation/#{request_id}/response", body, 'Content-Type' => content_type)
    end

    def error(request_id, error)
      post_error("/invocation/#{request_id}/error", error)
    end

    def init_error(error)
      post_error('/init/error', error)
    end

    private

    def post_error(path, error)
      request('POST', path, error.to_lambda_response.to_json,
              'Lambda-Runtime-Function-Error-Type' => error.runtime_error_type,
              'Content-Type' => 'application/json')
    end

    def request(method, path, body, headers = {})
      body = body.b
      head = +"#{method} #{API_PREFIX}#{path} HTTP/1.1\r\nHost: #{@address}\r\nContent-Length: #{body.bytesize}\r\n"
      headers.each { |k, v| head << "#{k}: #{v}\r\n" }
      head << "\r\n"
      attempt = 0
      begin
        connect if @sock.nil?
        @sock.write(head.b + body)
        read_response
      rescue IOError, SystemCallError
        # The server may have closed an idle kept-alive connection: reconnect once.
        close
        attempt += 1
        retry if attempt < 2
        raise
      end
    end

    def connect
      @sock = TCPSocket.new(@host, @port)
      @sock.setsockopt(Socket::IPPROTO_TCP, Socket::TCP_NODELAY, 1)
    end

    def close
      @sock&.close
    rescue IOError
      nil
    ensure
      @sock = nil
    end

    def read_line
      line = @sock.gets("\r\n")
      raise IOError, 'the Runtime API closed the connection' if line.nil?

      line.chomp("\r\n")
    end

    def read_response
      status = read_line.split(' ', 3)[1].to_i
      headers = {}
      loop do
        line = read_line
        break if line.empty?

        key, value = line.split(':', 2)
        headers[key.strip.downcase] = value.to_s.strip
      end
      body = if headers['transfer-encoding'].to_s.casecmp?('chunked')
               read_chunked
             else
               length = headers['content-length'].to_i
               length.positive? ? @sock.read(length) : +''
             end
      close if headers['connection'].to_s.casecmp?('close')
      [status, headers, body.force_encoding('UTF-8')]
    end

    def read_chunked
      body = +''
      loop do
        size = read_line.split(';', 2)[0].to_i(16)
        if size.zero?
          loop { break if read_line.empty? }
          return body
        end
        body << @sock.read(size)
        read_line
      end
    end
  end

  # The handler named by _HANDLER, called as AWS's runtime calls it.
  class Handler
    attr_reader :file

    def initialize(name)
      parts = name.to_s.split('.')
      case parts.size
      when 2 then @file, @method = parts
      when 3 then @file, @class_name, @method = parts
      else
        raise ArgumentError, "Invalid handler #{parts}, must be of form FILENAME.METHOD or " \
                             'FILENAME.CLASS.METHOD where FILENAME corresponds with an existing Ruby ' \
                             'source file FILENAME.rb, CLASS is an optional module/class namespace ' \
                             'and METHOD is a callable method. If using CLASS, METHOD must be a ' \
                             'class-level method.'
      end
    end

    def call(event, context)
      if @class_name
        Kernel.const_get(@class_name).send(@method, event: event, context: context)
      else
        __send__(@method, event: event, context: context)
      end
    end
  end

  # Sets the process up for the function: its environment (a pooled process gets it now),
  # working directory, gem paths and load path, as Lambda sets them for Ruby.
  def self.configure
    fd = ENV['FIREBOX_CONFIG_FD']
    if fd
      io = IO.new(fd.to_i, 'r')
      config = JSON.parse(io.read)
      io.close
      ENV.replace(config['env'])
    end
    task = ENV['LAMBDA_TASK_ROOT'] || '/var/task'
    opt = ENV['FIREBOX_OPT_DIR'] || '/opt'
    Dir.chdir(task)
    named = ENV['AWS_EXECUTION_ENV'].to_s[/ruby(\d+\.\d+)/, 1]
    versions = [named && "#{named}.0", RbConfig::CONFIG['ruby_version']].compact.uniq
    unless ENV.key?('GEM_PATH')
      host = Gem.default_path
      paths = versions.map { |v| "#{task}/vendor/bundle/ruby/#{v}" } +
              versions.map { |v| "#{opt}/ruby/gems/#{v}" } + host
      ENV['GEM_PATH'] = paths.uniq.join(':')
    end
    ENV['RUBYLIB'] ||= "#{task}:#{RUNTIME_DIR}:#{opt}/ruby/lib"
    ENV['RUBYLIB'].split(':').reverse_each { |dir| $LOAD_PATH.unshift(dir) unless $LOAD_PATH.include?(dir) }
    Gem.clear_paths
  end

  def self.log_error(exception, message)
    $stdout.puts(message)
    $stdout.puts(JSON.pretty_generate(exception.to_lambda_response))
  end

  def self.marshal(response)
    case response
    when StringIO, IO then [response.read, 'application/unknown']
    else [response.to_json, 'application/json']
    end
  end

  def self.main
    $stdout.sync = true
    $stderr.sync = true
    Logger.prepend(LoggerPatch)
    configure
    client = Client.new(ENV['AWS_LAMBDA_RUNTIME_API'] || '127.0.0.1:9001')
    begin
      handler = Handler.new(ENV['_HANDLER'])
      require handler.file
    rescue Exception => e # rubocop:disable Lint/RescueException -- any failure of Init is reported
      error = LambdaError.new(e, 'Init')
      log_error(error, 'Init error when loading handler')
      client.init_error(error)
      exit(-4)
    end
    loop do
      headers, body = client.next_invocation
      self.request_id = headers['lambda-runtime-aws-request-id']
      ENV['_X_AMZN_TRACE_ID'] = headers['lambda-runtime-trace-id'] if headers['lambda-runtime-trace-id']
      context = LambdaContext.new(headers)
      critical = false
      begin
        event = headers['content-type'] == 'application/json' ? JSON.parse(body) : body
        payload, content_type = marshal(handler.call(event, context))
      rescue NoMethodError, NameError => e
        error = LambdaError.new(e)
        critical = true
        log_error(error, 'Critical exception from handler')
      rescue StandardError => e
        error = LambdaError.new(e)
        log_error(error, 'Error raised from handler method')
      rescue Exception => e # rubocop:disable Lint/RescueException -- as AWS's runtime, then exit
        error = LambdaError.new(e)
        critical = true
        log_error(error, 'Critical exception from handler')
      end
      if error
        client.error(request_id, error)
        exit(-1) if critical
        error = nil
      else
        client.respond(request_id, payload, content_type)
      end
    end
  end

  # Work that does not depend on the function, done while a pooled process waits for it.
  def self.warm_up
    sample = { 'a' => [1, 2.5, nil, true, 'é'], 'b' => { 'c' => 'd' } }
    50.times { JSON.parse(sample.to_json) }
    Logger.new(StringIO.new).info('warm')
    Time.now.iso8601(6)
  end
end

if $PROGRAM_NAME == __FILE__
  FireboxRuntime.warm_up if ENV['FIREBOX_CONFIG_FD']
  FireboxRuntime.main
end
