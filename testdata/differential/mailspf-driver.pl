#!/usr/bin/perl
# Evaluates SPF cases with Mail::SPF (Debian libmail-spf-perl) for the
# differential test.
#
# Reads one JSON object a line on stdin:
#     {"id": "...", "server": "127.0.0.1:PORT", "scope": "mfrom" | "helo",
#      "ip": "...", "sender": "...", "helo": "...", "receiver": "..."}
# and writes one a line on stdout, in the same order:
#     {"id": "...", "result": "pass", "explanation": "..." or null,
#      "mechanism": "...", "problem": "...", "error": "..."}
# "explanation" is the expanded exp= text of a fail, null for the default text
# and for every other result; "mechanism" is the term that matched; "problem"
# is Mail::SPF's message for permerror and temperror; "error" says why
# Mail::SPF died (result "crash"). Every DNS query goes to "server".
#
# A null sender is checked as postmaster@HELO in the mfrom scope (RFC 7208
# section 2.4) rather than in the helo scope that Mail::SPF's documentation
# suggests, so that both identities are what RFC 7208 says they are.
use strict;
use warnings;

use JSON::PP;
use Mail::SPF;
use Net::DNS::Resolver;

my $DEFAULT_EXP = 'default-explanation-sentinel';
my $json = JSON::PP->new->canonical->utf8(0);
my %servers;

sub server_for {
	my ($addr, $receiver) = @_;
	my $key = "$addr $receiver";
	return $servers{$key} if $servers{$key};
	my ($host, $port) = $addr =~ /^\[?(.*?)\]?:(\d+)$/ or die "bad server address $addr\n";
	my $res = Net::DNS::Resolver->new(
		nameservers => [$host],
		port        => $port,
		recurse     => 1,
		retry       => 1,
		udp_timeout => 4,
		tcp_timeout => 4,
		searchlist  => [],
		defnames    => 0,
		dnsrch      => 0,
	);
	return $servers{$key} = Mail::SPF::Server->new(
		dns_resolver                  => $res,
		hostname                      => $receiver,
		default_authority_explanation => $DEFAULT_EXP,
	);
}

sub evaluate {
	my ($case) = @_;
	my $server = server_for($case->{server}, $case->{receiver} // 'unknown');
	my ($scope, $identity);
	if ($case->{scope} eq 'helo') {
		($scope, $identity) = ('helo', $case->{helo});
	} elsif ($case->{sender} eq '') {
		($scope, $identity) = ('mfrom', 'postmaster@' . $case->{helo});
	} else {
		($scope, $identity) = ('mfrom', $case->{sender});
	}
	my $request = Mail::SPF::Request->new(
		versions      => [1],
		scope         => $scope,
		identity      => $identity,
		ip_address    => $case->{ip},
		helo_identity => $case->{helo},
	);
	my $result = $server->process($request);
	my $code = $result->code;
	my $exp;
	if ($code eq 'fail') {
		$exp = $result->authority_explanation;
		$exp = undef if defined($exp) and $exp eq $DEFAULT_EXP;
	}
	my $out = { result => $code, explanation => $exp };
	if ($code eq 'permerror' or $code eq 'temperror') {
		$out->{problem} = $result->text;
	} elsif ($result->text =~ /^Mechanism '(.*)' matched$/) {
		$out->{mechanism} = $1;
	}
	return $out;
}

$| = 1;
while (my $line = <STDIN>) {
	chomp $line;
	next if $line eq '';
	my $case = $json->decode($line);
	my $out = eval { evaluate($case) };
	if (not $out) {
		my $err = "$@";
		$err =~ s/\s+$//;
		$out = { result => 'crash', explanation => undef, error => $err };
	}
	$out->{id} = $case->{id};
	print $json->encode($out), "\n";
}
